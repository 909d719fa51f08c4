/* ESP-IDF 5's esp_partition.h, the declarations gridlet's native/ota.c uses (syntax check only). */
#pragma once
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

typedef int esp_err_t;
#define ESP_OK 0
const char *esp_err_to_name(esp_err_t code);

typedef struct {
	void *flash_chip;
	int type;
	int subtype;
	uint32_t address;
	uint32_t size;
	uint32_t erase_size;
	char label[17];
	bool encrypted;
	bool readonly;
} esp_partition_t;

esp_err_t esp_partition_read(const esp_partition_t *partition, size_t src_offset, void *dst, size_t size);
esp_err_t esp_partition_write(const esp_partition_t *partition, size_t dst_offset, const void *src, size_t size);
esp_err_t esp_partition_erase_range(const esp_partition_t *partition, size_t offset, size_t size);
