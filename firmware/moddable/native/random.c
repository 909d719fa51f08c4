/*
 * Module "gridlet/random": fill(buffer) from the hardware random number generator. On ESP32 that
 * is esp_fill_random (true random once Wi-Fi or Bluetooth runs, which the agent needs anyway);
 * on the lin simulator, getrandom(2). The core receives it as its Random port (crypto.ts).
 */

#include "xsmc.h"

#if ESP32
	#include "esp_random.h"
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
