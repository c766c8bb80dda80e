# ctest idf_stub_versions: the ESP-IDF and esp_encrypted_img versions the host stubs copy
# (idf_stubs/esp_err.h, idf_stubs/esp_encrypted_img.h) are the lowest ones the component's
# idf_component.yml admits, and the manifest keeps ESP-IDF 6 out.
#   cmake -DMANIFEST=.../idf_component.yml -DSTUBS=.../idf_stubs -P check_stub_versions.cmake
file(READ "${MANIFEST}" manifest)
file(READ "${STUBS}/esp_encrypted_img.h" img_stub)
file(READ "${STUBS}/esp_err.h" err_stub)

set(failed FALSE)
macro(fail)
  message(SEND_ERROR ${ARGN})
  set(failed TRUE)
endmacro()

string(REGEX MATCH "SO_HOST_STUB_ESP_ENCRYPTED_IMG_VERSION \"([0-9.]+)\"" unused "${img_stub}")
set(img_stub_version "${CMAKE_MATCH_1}")
string(REGEX MATCH "\n[ ]+espressif/esp_encrypted_img:[ ]*\"\\^([0-9.]+)\"" unused "${manifest}")
set(img_min "${CMAKE_MATCH_1}")
if(img_stub_version STREQUAL "" OR img_min STREQUAL "")
  fail("esp_encrypted_img: version not found (stub '${img_stub_version}', manifest '^${img_min}')")
elseif(NOT img_stub_version VERSION_EQUAL img_min)
  fail("esp_encrypted_img: the stub copies ${img_stub_version}, idf_component.yml admits ^${img_min}")
endif()

string(REGEX MATCH "SO_HOST_STUB_IDF_VERSION \"([0-9.]+)\"" unused "${err_stub}")
set(idf_stub_version "${CMAKE_MATCH_1}")
string(REGEX MATCH "\n[ ]+idf:[ ]*\">=([0-9.]+),[ ]*<([0-9.]+)\"" unused "${manifest}")
set(idf_min "${CMAKE_MATCH_1}")
set(idf_below "${CMAKE_MATCH_2}")
if(idf_stub_version STREQUAL "" OR idf_min STREQUAL "")
  fail("idf: expected \">=X.Y,<Z.W\" in idf_component.yml and SO_HOST_STUB_IDF_VERSION in the stubs")
elseif(NOT idf_stub_version VERSION_EQUAL idf_min)
  fail("idf: the stubs copy ESP-IDF ${idf_stub_version}, idf_component.yml admits >=${idf_min}")
elseif(idf_below VERSION_GREATER 6.0)
  fail("idf: idf_component.yml admits ESP-IDF 6 (<${idf_below}); the core needs IDF's json "
       "component and the Mbed TLS 3 API")
endif()

if(failed)
  message(FATAL_ERROR "stub versions and idf_component.yml disagree")
endif()
message(STATUS "stubs copy ESP-IDF ${idf_stub_version} and esp_encrypted_img ${img_stub_version}, "
               "as idf_component.yml requires (idf >=${idf_min},<${idf_below})")
