/*
 * The gridlet guest SDK for C (GUESTS.md, ABI version 1): the `gridlet` imports as ordinary functions,
 * the channel and signal numbers, and a few allocation-free helpers. Header only, no libc needed:
 * `gridlet guest build` compiles a guests/src/<name>.c with
 *     clang --target=wasm32 -nostdlib -Oz   (or --target=wasm32-wasi with wasi-libc for a WASI guest)
 * and instruments, checks and size-checks the result like any guest.
 *
 * A ticked guest exports init and tick (GRIDLET_EXPORT), optionally on_signal; a one-shot job is a
 * WASI command with a main (GUESTS.md "WASI"). In a world, a member calls another's function through
 * GRIDLET_PEER (GUESTS.md "Microworlds").
 */
#ifndef GRIDLET_H
#define GRIDLET_H

#define GRIDLET_IMPORT(name) __attribute__((import_module("gridlet"), import_name(#name)))
/* An export the agent calls (init, tick, on_signal) or another world member may call. */
#define GRIDLET_EXPORT(name) __attribute__((export_name(#name)))
/* A function world member `member` offers (its manifest's "exports"), called through the agent. */
#define GRIDLET_PEER(member, name) __attribute__((import_module(#member), import_name(#name)))

/* Unix seconds (NaN before the meter has a clock). */
GRIDLET_IMPORT(time) double gl_time(void);
/* Local hour 0–23 and weekday 0 Monday … 6 Sunday in the meter's time zone (-1 without a clock). */
GRIDLET_IMPORT(local_hour) int gl_local_hour(void);
GRIDLET_IMPORT(weekday) int gl_weekday(void);
/* Latest value of a meter channel (GL_CH_…), NaN when unknown or not granted. */
GRIDLET_IMPORT(channel) double gl_channel(int ch);
/* A grid signal (GL_SIGNAL_…), NaN when none or not granted. */
GRIDLET_IMPORT(signal) double gl_signal(int id);
/* Asks for a relay state: GL_RELAY_DONE, GL_RELAY_NO_CAPABILITY or GL_RELAY_REFUSED (an interlock). */
GRIDLET_IMPORT(relay) int gl_relay(int id, int on);
/* 1 on, 0 off, -1 no such relay. */
GRIDLET_IMPORT(relay_state) int gl_relay_state(int id);
/* Sends guest.<name>.<kind> upstream (kind 0–99): 0 sent, -3 rate-limited (1 a minute per kind). */
GRIDLET_IMPORT(emit) int gl_emit(int kind, double value);
/* A log line from memory (cut at 120 bytes, 4 lines per call). */
GRIDLET_IMPORT(log) void gl_log(const char *text, int length);
/* A persistent slot (0 ≤ slot < the manifest's kv:N), NaN when unset; gl_kv_set answers 0 or -1. */
GRIDLET_IMPORT(kv_get) double gl_kv_get(int slot);
GRIDLET_IMPORT(kv_set) int gl_kv_set(int slot, double value);

/* Meter channels (WIRE.md "Channels"), integer units. */
enum {
	GL_CH_ENERGY_IMPORTED = 1,	/* Wh, total */
	GL_CH_ENERGY_EXPORTED = 2,	/* Wh, total */
	GL_CH_POWER_IMPORTED = 3,	/* W */
	GL_CH_POWER_EXPORTED = 4,	/* W */
	GL_CH_VOLTAGE_L1 = 5,		/* mV */
	GL_CH_VOLTAGE_L2 = 6,
	GL_CH_VOLTAGE_L3 = 7,
	GL_CH_CURRENT_L1 = 8,		/* mA */
	GL_CH_CURRENT_L2 = 9,
	GL_CH_CURRENT_L3 = 10,
	GL_CH_GAS = 11,				/* dm³, total */
	GL_CH_TARIFF = 12
};

/* Grid signals (GUESTS.md `signal`). */
enum {
	GL_SIGNAL_PRICE = 1,		/* per kWh, currency units */
	GL_SIGNAL_DR_LEVEL = 2,		/* 0–3 */
	GL_SIGNAL_IMPORT_LIMIT = 3	/* W */
};

/* What gl_relay answers. */
enum {
	GL_RELAY_DONE = 0,
	GL_RELAY_NO_CAPABILITY = -1,
	GL_RELAY_REFUSED = -2		/* dwell, toggles per hour, critical circuit, technician lock */
};

static inline int gl_isnan(double x) { return x != x; }

/* Logs `text` (a C string) followed by `value` when `decimals` ≥ 0: "shed level 2", "u -312.5". */
static inline void gl_log_value(const char *text, double value, int decimals)
{
	char line[120];
	int n = 0, k, i;
	long long whole, scale = 1;
	char digits[24];

	while (text[n] && n < 80) {
		line[n] = text[n];
		n++;
	}
	if (decimals >= 0) {
		for (i = 0; i < decimals && i < 6; i++)
			scale *= 10;
		line[n++] = ' ';
		if (gl_isnan(value)) {
			line[n++] = 'N';
			line[n++] = 'a';
			line[n++] = 'N';
		}
		else {
			if (value < 0) {
				line[n++] = '-';
				value = -value;
			}
			if (value > 1e12)
				value = 1e12;
			whole = (long long)(value * (double)scale + 0.5);
			k = 0;
			do {
				digits[k++] = (char)('0' + whole % 10);
				whole /= 10;
			} while (whole > 0 || k <= decimals);
			while (k > 0) {
				line[n++] = digits[--k];
				if (k == decimals && decimals > 0)
					line[n++] = '.';
			}
		}
	}
	gl_log(line, n);
}

/* Logs a C string. */
static inline void gl_log_text(const char *text)
{
	gl_log_value(text, 0, -1);
}

#endif
