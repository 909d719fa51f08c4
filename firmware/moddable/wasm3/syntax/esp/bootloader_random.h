/*
 * FOR SYNTAX CHECKING ONLY: the declarations native/random.c uses from ESP-IDF 5.x's
 * components/bootloader_support/include/bootloader_random.h.
 */
#ifndef bootloader_random_h
#define bootloader_random_h
#include <stddef.h>
void bootloader_random_enable(void);
void bootloader_random_disable(void);
void bootloader_fill_random(void *buffer, size_t length);
#endif
