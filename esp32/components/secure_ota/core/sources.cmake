# The portable core's sources, listed once: included by the ESP-IDF component
# (../CMakeLists.txt) and by the host build (esp32/host/CMakeLists.txt).
#   SO_CORE_SOURCES      the .c files (absolute paths)
#   SO_CORE_INCLUDE_DIR  include/: so_core.h, the core's public header
#   SO_CORE_PRIVATE_DIR  src/: so_internal.h (cJSON and mbedTLS types), for the core's own files
#                        and the host's white-box tests
set(SO_CORE_INCLUDE_DIR "${CMAKE_CURRENT_LIST_DIR}/include")
set(SO_CORE_PRIVATE_DIR "${CMAKE_CURRENT_LIST_DIR}/src")
set(SO_CORE_SOURCES
    "${SO_CORE_PRIVATE_DIR}/so_util.c"
    "${SO_CORE_PRIVATE_DIR}/so_json.c"
    "${SO_CORE_PRIVATE_DIR}/so_keys.c"
    "${SO_CORE_PRIVATE_DIR}/so_spki.c"
    "${SO_CORE_PRIVATE_DIR}/so_rotation.c"
    "${SO_CORE_PRIVATE_DIR}/so_ecdh.c"
    "${SO_CORE_PRIVATE_DIR}/so_jose.c"
    "${SO_CORE_PRIVATE_DIR}/so_claims.c"
    "${SO_CORE_PRIVATE_DIR}/so_decide.c"
    "${SO_CORE_PRIVATE_DIR}/so_encimg.c"
    "${SO_CORE_PRIVATE_DIR}/so_appimg.c"
    "${SO_CORE_PRIVATE_DIR}/so_image.c"
    "${SO_CORE_PRIVATE_DIR}/so_report.c")
