/*
 * The wasm3 guest engine for Node: firmware/moddable/wasm3/guest-core.c (the same C the meter runs)
 * and wasm3 v0.5 compiled to one standalone WebAssembly module by scripts/build-wasm3.js. This file
 * only passes numbers and strings between host/guests/wasm3-engine.ts and the core; imports go out
 * through the module's one import, gridlet.host_import.
 */

#include "guest-core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((used, visibility("default")))

/* The host answers import `index` of guest `handle`: 0, or 1 when the JavaScript function threw. */
__attribute__((import_module("gridlet"), import_name("host_import")))
extern int hostImport(int handle, int index, const double *args, int argc, double *result);

static int dispatch(void *host, int index, const double *args, int argc, double *result)
{
	return hostImport((int)(intptr_t)host, index, args, argc, result);
}

/* Strings and arguments from the host: three names of up to 63 bytes and 8 doubles. */
static char names[3][64];
static double values[8];
static double result;
static int hasResult;
static const char *error;

EXPORT char *gw_name(int i) { return names[i]; }
EXPORT double *gw_values(void) { return values; }
EXPORT double gw_result(void) { return result; }
EXPORT int gw_has_result(void) { return hasResult; }
EXPORT const char *gw_error(void) { return error ? error : ""; }
EXPORT void *gw_alloc(uint32_t n) { return malloc(n); }
EXPORT void gw_release(void *p) { free(p); }

EXPORT GuestCore *gw_new(const uint8_t *wasm, uint32_t length, uint32_t memoryBytes, uint32_t stackBytes, int handle)
{
	return guestCoreNew(wasm, length, memoryBytes, stackBytes, dispatch, (void *)(intptr_t)handle, &error);
}

EXPORT int gw_link(GuestCore *g, int index)
{
	return guestCoreLink(g, names[0], names[1], names[2], index, &error);
}

EXPORT int gw_link_metering(GuestCore *g)
{
	return guestCoreLinkMetering(g, names[0], names[1], &error);
}

EXPORT const char *gw_prepare(GuestCore *g)
{
	return guestCorePrepare(g);
}

EXPORT int gw_start(GuestCore *g, double fuel)
{
	return guestCoreStart(g, fuel);
}

EXPORT int gw_call(GuestCore *g, uint32_t argc, double fuel)
{
	return guestCoreCall(g, names[0], values, argc, fuel, &result, &hasResult);
}

EXPORT const char *gw_message(GuestCore *g) { return guestCoreMessage(g); }
EXPORT double gw_fuel_used(GuestCore *g) { return guestCoreFuelUsed(g); }
EXPORT int gw_running(GuestCore *g) { return guestCoreRunning(g); }
EXPORT int gw_charge(GuestCore *g, double fuel) { return guestCoreCharge(g, fuel); }
EXPORT const uint8_t *gw_read(GuestCore *g, double ptr, double len) { return guestCoreRead(g, ptr, len); }
EXPORT void gw_free(GuestCore *g) { guestCoreFree(g); }
