/*
 * Module "gridlet/random": fill(buffer) from the hardware random number generator, and entropy(on)
 * for the secrets a meter makes at boot. On ESP32 the generator is esp_fill_random: true random only
 * while Wi-Fi or Bluetooth runs, or while the bootloader's entropy source (SAR ADC noise) is on, so
 * entropy(true) switches that source on (bootloader_random_enable) and entropy(false) off again
 * (bootloader_random_disable), both only before Wi-Fi starts (ESP-IDF: bootloader_random.h). On the
 * lin simulator fill is getrandom(2), always strong, and entropy does nothing (it answers false).
 * The core receives it as its Random port (crypto.ts; firmware/moddable/random.ts).
 */

#include "xsmc.h"

#if ESP32
	#include "esp_random.h"
	#include "bootloader_random.h"
#else
	#include <sys/random.h>
#endif

void xs_gridlet_random_fill(xsMachine *the)
{
	void *data;
	xsUnsignedValue length;

	xsmcGetBufferWritable(xsArg(0), &data, &length);
#if ESP32
	esp_fill_random(data, length);
#else
	{
		uint8_t *p = data;
		while (length) {
			ssize_t n = getrandom(p, length, 0);
			if (n <= 0)
				xsUnknownError("getrandom failed");
			p += n;
			length -= (xsUnsignedValue)n;
		}
	}
#endif
}

void xs_gridlet_random_entropy(xsMachine *the)
{
#if ESP32
	if (xsmcTest(xsArg(0)))
		bootloader_random_enable();
	else
		bootloader_random_disable();
	xsmcSetTrue(xsResult);
#else
	xsmcSetFalse(xsResult);
#endif
}
