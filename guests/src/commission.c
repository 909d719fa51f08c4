/*
 * commission (C, WASI): a one-shot commissioning check an installer deploys once after fitting a
 * meter. A WASI command (main, built for wasm32-wasi with wasi-libc): it runs once, writes its report
 * to stdout (which becomes the guest's log), emits the verdict as kind 0 (the number of failed
 * checks) and exits with that number.
 *
 * Checks: the L1 voltage is within 230 V ± 10 % (EN 50160); the L1 current and the import power agree
 * (the power is no more than voltage × current + 5 %, and some current flows when power does); the
 * import register counts. Every line of the report carries a report id from random_get and the
 * meter's time from clock_gettime.
 */
#include "gridlet.h"

#include <time.h>
#include <unistd.h>

static char line[120];
static int n;

static void put(const char *s)
{
	while (*s && n < (int)sizeof(line))
		line[n++] = *s++;
}

static void put_int(long long v)
{
	char digits[24];
	int k = 0;
	if (v < 0) {
		put("-");
		v = -v;
	}
	do {
		digits[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (k > 0 && n < (int)sizeof(line))
		line[n++] = digits[--k];
}

static void put_hex(unsigned v)
{
	static const char hex[] = "0123456789abcdef";
	int shift;
	for (shift = 28; shift >= 0; shift -= 4)
		if (n < (int)sizeof(line))
			line[n++] = hex[(v >> shift) & 15];
}

static unsigned report;

static void begin(const char *what)
{
	n = 0;
	put("commission ");
	put_hex(report);
	put(" ");
	put(what);
}

static void end(void)
{
	line[n < (int)sizeof(line) ? n++ : n - 1] = '\n';
	write(1, line, n);
}

/* Reports one check; returns 1 when it failed. */
static int check(const char *what, int ok, const char *unit, double value)
{
	begin(what);
	put(ok ? " ok " : " FAIL ");
	if (gl_isnan(value))
		put("unknown");
	else {
		put_int((long long)value);
		put(unit);
	}
	end();
	return !ok;
}

int main(void)
{
	struct timespec now;
	double volts = gl_channel(GL_CH_VOLTAGE_L1) / 1000.0;
	double amps = gl_channel(GL_CH_CURRENT_L1) / 1000.0;
	double watts = gl_channel(GL_CH_POWER_IMPORTED);
	double energy = gl_channel(GL_CH_ENERGY_IMPORTED);
	int failed = 0;

	if (getentropy(&report, sizeof(report)) != 0)
		report = 0;
	begin("at ");
	if (clock_gettime(CLOCK_REALTIME, &now) == 0)
		put_int((long long)now.tv_sec);
	else
		put("no clock");
	end();

	failed += check("voltage L1", volts >= 207 && volts <= 253, " V", volts);
	failed += check("current L1", !gl_isnan(amps) && (watts < 50 || amps > 0.05), " mA", amps * 1000);
	failed += check("power vs V*I", !gl_isnan(watts) && !gl_isnan(amps) && watts <= volts * amps * 1.05 + 20, " W", watts);
	failed += check("import register", !gl_isnan(energy) && energy >= 0, " Wh", energy);

	begin(failed ? "FAILED checks " : "passed, failed checks ");
	put_int(failed);
	end();
	gl_emit(0, failed);
	return failed;
}
