# The C++ SDK installed with the Python package (pip install .): the core's headers, the static
# library and a CMake package, so find_package(bot4 CONFIG) works against an installed bot4
# (bot4.get_cmake_dir() / `python -m bot4.sdk --cmakedir` print the folder). Wheel layout:
#   bot4/include/bot4/<domain>/*.hpp, bot4/lib/libbot4_core.a, bot4/share/cmake/bot4/*.cmake
option(BOT4_SDK "Install the core headers, static library and CMake package" ON)
if(NOT BOT4_SDK)
  return()
endif()

include(CheckCXXCompilerFlag)
if(CMAKE_INTERPROCEDURAL_OPTIMIZATION)
  # With LTO the objects would hold compiler IR only, linkable by this exact compiler version
  # alone. Fat objects carry machine code beside the IR: bot4's extension still gets cross-TU
  # inlining, and a user's program links the archive with any compiler, with or without -flto
  # (costs ~1.5x compile time of the core).
  check_cxx_compiler_flag(-ffat-lto-objects BOT4_HAS_FAT_LTO)
  if(BOT4_HAS_FAT_LTO)
    target_compile_options(bot4_core PRIVATE -ffat-lto-objects)
  else()
    message(WARNING "bot4: ${CMAKE_CXX_COMPILER_ID} has no -ffat-lto-objects: the installed libbot4_core.a "
                    "holds LTO IR and links only with this compiler and -flto")
  endif()
endif()

set_target_properties(bot4_core PROPERTIES EXPORT_NAME core)
install(TARGETS bot4_core EXPORT bot4Targets ARCHIVE DESTINATION bot4/lib)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/ DESTINATION bot4/include/bot4 FILES_MATCHING PATTERN "*.hpp")
install(EXPORT bot4Targets NAMESPACE bot4:: DESTINATION bot4/share/cmake/bot4)

include(CMakePackageConfigHelpers)
set(BOT4_SANITIZE_BUILD ${BOT4_SANITIZE})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/bot4Config.cmake.in
  ${PROJECT_BINARY_DIR}/bot4Config.cmake INSTALL_DESTINATION bot4/share/cmake/bot4)
# 0.x: a minor release may change the strategy interface.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/bot4ConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/bot4Config.cmake ${PROJECT_BINARY_DIR}/bot4ConfigVersion.cmake
  DESTINATION bot4/share/cmake/bot4)
