# The ESP-IDF glue's sources, listed once: built by the component (../CMakeLists.txt) and
# compile-checked on the host against declaration stubs (esp32/host/CMakeLists.txt).
set(SO_GLUE_SOURCES
    "${CMAKE_CURRENT_LIST_DIR}/secure_ota_err.c"
    "${CMAKE_CURRENT_LIST_DIR}/secure_ota_nvs.c"
    "${CMAKE_CURRENT_LIST_DIR}/secure_ota_config.c"
    "${CMAKE_CURRENT_LIST_DIR}/secure_ota_http.c"
    "${CMAKE_CURRENT_LIST_DIR}/secure_ota_report.c"
    "${CMAKE_CURRENT_LIST_DIR}/secure_ota_resume.c"
    "${CMAKE_CURRENT_LIST_DIR}/secure_ota_check.c"
    "${CMAKE_CURRENT_LIST_DIR}/secure_ota_update.c")
