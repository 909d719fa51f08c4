/*
 * Module "gridlet/ota": the meter's two app slots and boot control through ESP-IDF's OTA API
 * (app_update/esp_ota_ops.h), for the core's Updater port (firmware/moddable/ota.ts):
 *
 *   info()                  [slotSize, eraseSize, trial, rejected] of the update slot and the running image:
 *                           trial while the running app is ESP_OTA_IMG_PENDING_VERIFY (rollback enabled),
 *                           rejected while the update slot holds an image the bootloader gave up
 *                           (ESP_OTA_IMG_ABORTED or _INVALID)
 *   write(offset, bytes)    the image's bytes into the update slot: through esp_ota_begin/esp_ota_write
 *                           when the download runs from offset 0 in this boot, else (resumed after a
 *                           restart) esp_partition_erase_range/esp_partition_write (see below)
 *   read(offset, length)    esp_partition_read of the update slot (decrypted when encrypted)
 *   setPending()            esp_ota_end (when a handle wrote it) and esp_ota_set_boot_partition, each
 *                           of which checks the image (header, hash and, under secure boot, its
 *                           signature): the next boot runs it, on trial (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE)
 *   confirm()               esp_ota_mark_app_valid_cancel_rollback
 *   rollback()              esp_ota_mark_app_invalid_rollback_and_reboot (the bootloader returns to the
 *                           previous image; does not return)
 *   restart()               esp_restart
 *
 * The Moddable SDK's own `ota` module (build/devices/esp32/modules/ota) writes sequentially and cannot
 * resume, read back, confirm or roll back; this one does what the core's update state machine needs.
 * On the lin simulator only restart() works: it ends the simulator with status 0, and the launcher
 * that started it boots the slot its boot control chooses (test/firmware/ota.test.ts); the slots
 * there are a file partition driven by the core's FlashUpdater (main.ts, otaPartition).
 */

#include "xsmc.h"

#if ESP32

// As the Moddable SDK's own ota module does: its ESP32 build has $(IDF_PATH)/components on the
// include path, not app_update/include.
#include "app_update/include/esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"

/*
 * A download that runs through in one boot goes through an OTA handle: esp_ota_begin with
 * OTA_WITH_SEQUENTIAL_WRITES (nothing erased up front), esp_ota_write (ESP-IDF erases each sector as the
 * writes reach it, checks the image's magic byte, and under flash encryption keeps the writes in 16-byte
 * units), esp_ota_end (writes what is left and verifies the image). A download resumed after a restart
 * cannot continue a handle (esp_ota_write writes at the handle's own count from 0, and
 * esp_ota_write_with_offset needs a slot erased up front, which would lose what was kept), so its writes
 * go to the partition directly, erasing sector by sector ahead of them; esp_ota_set_boot_partition
 * verifies the whole image either way.
 */
static esp_ota_handle_t gHandle = 0;
static uint32_t gNext = 0;          /* where the handle writes next */
static int32_t gErasedTo = -1;      /* resumed download: bytes of the slot known erased, or -1 */

static const esp_partition_t *updateSlot(xsMachine *the)
{
	const esp_partition_t *p = esp_ota_get_next_update_partition(NULL);
	if (!p)
		xsUnknownError("no OTA update partition: flash a partition table with ota_0 and ota_1 (manifests/partitions-*.csv)");
	return p;
}

static void check(xsMachine *the, esp_err_t err, const char *what)
{
	if (err != ESP_OK)
		xsUnknownError("%s: %s", what, esp_err_to_name(err));
}

void xs_gridlet_ota_info(xsMachine *the)
{
	const esp_partition_t *next = updateSlot(the);
	const esp_partition_t *running = esp_ota_get_running_partition();
	esp_ota_img_states_t state;
	int trial = 0, rejected = 0;

	if (running && esp_ota_get_state_partition(running, &state) == ESP_OK)
		trial = state == ESP_OTA_IMG_PENDING_VERIFY;
	if (esp_ota_get_state_partition(next, &state) == ESP_OK)
		rejected = state == ESP_OTA_IMG_ABORTED || state == ESP_OTA_IMG_INVALID;

	xsmcVars(1);
	xsmcSetNewArray(xsResult, 4);
	xsmcSetInteger(xsVar(0), next->size);
	xsmcSetIndex(xsResult, 0, xsVar(0));
	xsmcSetInteger(xsVar(0), next->erase_size);
	xsmcSetIndex(xsResult, 1, xsVar(0));
	xsmcSetBoolean(xsVar(0), trial);
	xsmcSetIndex(xsResult, 2, xsVar(0));
	xsmcSetBoolean(xsVar(0), rejected);
	xsmcSetIndex(xsResult, 3, xsVar(0));
}

void xs_gridlet_ota_write(xsMachine *the)
{
	const esp_partition_t *next = updateSlot(the);
	uint32_t offset = (uint32_t)xsmcToInteger(xsArg(0));
	xsUnsignedValue length;
	void *data;

	xsmcGetBufferReadable(xsArg(1), &data, &length);
	if (offset + length > next->size)
		xsRangeError("%u bytes at %u are outside the %u-byte slot", (unsigned)length, (unsigned)offset, (unsigned)next->size);
	if (gHandle && offset != gNext) {
		/* the download started again: the handle's sequence is broken */
		esp_ota_abort(gHandle);
		gHandle = 0;
	}
	if (!gHandle && offset == 0) {
		check(the, esp_ota_begin(next, OTA_WITH_SEQUENTIAL_WRITES, &gHandle), "esp_ota_begin");
		gNext = 0;
		gErasedTo = -1;
	}
	if (gHandle) {
		check(the, esp_ota_write(gHandle, data, length), "esp_ota_write");
		gNext += length;
		return;
	}
	/* resumed after a restart (the core resumes at a sector boundary) */
	if (gErasedTo < 0 || offset < (uint32_t)gErasedTo - next->erase_size)
		gErasedTo = (int32_t)(offset - offset % next->erase_size);
	while ((uint32_t)gErasedTo < offset + length) {
		check(the, esp_partition_erase_range(next, gErasedTo, next->erase_size), "esp_partition_erase_range");
		gErasedTo += next->erase_size;
	}
	check(the, esp_partition_write(next, offset, data, length), "esp_partition_write");
}

void xs_gridlet_ota_read(xsMachine *the)
{
	const esp_partition_t *next = updateSlot(the);
	int offset = xsmcToInteger(xsArg(0));
	int length = xsmcToInteger(xsArg(1));
	void *data;

	xsmcSetArrayBuffer(xsResult, NULL, length);
	data = xsmcToArrayBuffer(xsResult);
	check(the, esp_partition_read(next, offset, data, length), "esp_partition_read");
}

void xs_gridlet_ota_set_pending(xsMachine *the)
{
	const esp_partition_t *next = updateSlot(the);

	if (gHandle) {
		esp_err_t err = esp_ota_end(gHandle);
		gHandle = 0;
		check(the, err, "esp_ota_end (the image does not verify)");
	}
	/* verifies the whole image (header, hash and, under secure boot, its signature), then otadata */
	check(the, esp_ota_set_boot_partition(next), "esp_ota_set_boot_partition");
}

void xs_gridlet_ota_confirm(xsMachine *the)
{
	check(the, esp_ota_mark_app_valid_cancel_rollback(), "esp_ota_mark_app_valid_cancel_rollback");
}

void xs_gridlet_ota_rollback(xsMachine *the)
{
	check(the, esp_ota_mark_app_invalid_rollback_and_reboot(), "esp_ota_mark_app_invalid_rollback_and_reboot");
}

void xs_gridlet_ota_restart(xsMachine *the)
{
	esp_restart();
}

#else

#include <stdlib.h>
#include <stdio.h>

static void none(xsMachine *the)
{
	xsUnknownError("no ESP-IDF OTA on this platform: set config otaPartition (the simulator's file-backed slots)");
}

void xs_gridlet_ota_info(xsMachine *the) { none(the); }
void xs_gridlet_ota_write(xsMachine *the) { none(the); }
void xs_gridlet_ota_read(xsMachine *the) { none(the); }
void xs_gridlet_ota_set_pending(xsMachine *the) { none(the); }
void xs_gridlet_ota_confirm(xsMachine *the) { none(the); }
void xs_gridlet_ota_rollback(xsMachine *the) { none(the); }

void xs_gridlet_ota_restart(xsMachine *the)
{
	// The simulator's "restart": it ends, and its launcher boots the slot boot control chooses.
	fprintf(stdout, "gridlet: restart\n");
	fflush(stdout);
	fflush(stderr);
	exit(0);
}

#endif
