# Small helpers shared by the folders' CMakeLists.

# Warnings for the project's own code (never for generated code).
function(farm_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter -Werror=return-type)
endfunction()

# farm_proto_library(NAME PROTOS a.proto b.proto [GRPC] [GRPC_INCLUDES h...] [SRCS c.cc...])
# Generates C++ (and gRPC stubs with GRPC) for protos under ${CMAKE_CURRENT_SOURCE_DIR}, which
# is the import root, and builds them into a static library, with SRCS (hand-written, found
# from the same root). GRPC_INCLUDES: headers every generated .grpc.pb.h includes.
function(farm_proto_library name)
  cmake_parse_arguments(ARG "GRPC" "" "PROTOS;DEPS;GRPC_INCLUDES;SRCS" ${ARGN})
  set(srcs)
  set(hdrs)
  set(out ${CMAKE_CURRENT_BINARY_DIR})
  foreach(proto ${ARG_PROTOS})
    get_filename_component(dir ${proto} DIRECTORY)
    get_filename_component(base ${proto} NAME_WE)
    set(stem ${out}/${dir}/${base})
    set(outputs ${stem}.pb.cc ${stem}.pb.h)
    set(grpc_args)
    if(ARG_GRPC)
      list(APPEND outputs ${stem}.grpc.pb.cc ${stem}.grpc.pb.h)
      set(grpc_args --grpc_out=${out} --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
      if(ARG_GRPC_INCLUDES)
        list(JOIN ARG_GRPC_INCLUDES ":" includes)
        list(APPEND grpc_args --grpc_opt=additional_header_includes=${includes})
      endif()
    endif()
    set(include_files)
    foreach(header ${ARG_GRPC_INCLUDES})
      list(APPEND include_files ${CMAKE_CURRENT_SOURCE_DIR}/${header})
    endforeach()
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND protobuf::protoc --proto_path=${CMAKE_CURRENT_SOURCE_DIR} --cpp_out=${out}
              ${grpc_args} ${CMAKE_CURRENT_SOURCE_DIR}/${proto}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${proto} protobuf::protoc ${include_files}
      COMMENT "protoc ${proto}")
    list(APPEND srcs ${stem}.pb.cc)
    if(ARG_GRPC)
      list(APPEND srcs ${stem}.grpc.pb.cc)
    endif()
  endforeach()
  add_library(${name} STATIC ${srcs} ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${out})
  if(ARG_SRCS OR ARG_GRPC_INCLUDES)
    target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  target_link_libraries(${name} PUBLIC protobuf::libprotobuf gRPC::grpc++ ${ARG_DEPS})
endfunction()

# farm_only_links(TARGET ALLOWED...)
# Refuses (a configure error) any library of this project on TARGET's link line other than
# ALLOWED: imported targets (Foo::Bar) and plain system libraries are fine, any other target
# built here is not. Checked once every CMakeLists has been read, so that a later
# target_link_libraries(TARGET ...) anywhere is caught too.
function(farm_only_links target)
  set_property(TARGET ${target} PROPERTY FARM_ALLOWED_LINKS ${ARGN})
  # A deferred call expands its arguments when it runs: pass the name as a literal.
  cmake_language(EVAL CODE
    "cmake_language(DEFER DIRECTORY [[${CMAKE_SOURCE_DIR}]] CALL _farm_check_links [[${target}]])")
endfunction()

function(_farm_check_links target)
  get_target_property(allowed ${target} FARM_ALLOWED_LINKS)
  get_target_property(links ${target} LINK_LIBRARIES)
  get_target_property(interface ${target} INTERFACE_LINK_LIBRARIES)
  foreach(lib IN LISTS links interface)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" lib "${lib}")
    if(TARGET ${lib})
      get_target_property(imported ${lib} IMPORTED)
      if(NOT imported AND NOT lib IN_LIST allowed)
        list(JOIN allowed ", " allowed_text)
        message(FATAL_ERROR "${target} may link only ${allowed_text} of this project's "
                            "libraries, not ${lib}")
      endif()
    endif()
  endforeach()
endfunction()
