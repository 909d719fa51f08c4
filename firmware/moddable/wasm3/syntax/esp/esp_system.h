/* ESP-IDF 5's esp_system.h, the declaration gridlet's native/ota.c uses (syntax check only). */
#pragma once
void esp_restart(void) __attribute__((noreturn));
