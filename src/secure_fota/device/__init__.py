"""The Python reference device: an ESP32 running the secure-fota client, state kept on disk.

It runs the real protocol and the real format checks (:mod:`secure_fota.policy`) against a
real update server, on a flash model faithful to ESP-IDF's OTA scheme (factory, ota_0, ota_1,
otadata with app-rollback states, an anti-rollback eFuse). Used by the end-to-end tests, the
demo and the fleet simulator.
"""
