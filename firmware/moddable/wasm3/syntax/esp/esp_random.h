/* FOR SYNTAX CHECKING ONLY: ESP-IDF's esp_random.h declaration used by native/random.c. */
#ifndef esp_random_h
#define esp_random_h
#include <stddef.h>
#include <stdint.h>
uint32_t esp_random(void);
void esp_fill_random(void *buf, size_t len);
#endif
