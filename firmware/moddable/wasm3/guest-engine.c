/*
 * gridlet's wasm3 binding for XS: the host class in guest-engine.js (module "gridlet/wasm3") over
 * guest-core.c, the platform-neutral engine the host's wasm3 build (host/guests/wasm3/glue.c) runs
 * too. wasm3-guests.ts drives it as the core's GuestEngine port (engine.ts).
 *
 *   constructor(wasm, memoryBytes, stackBytes)  parse and load, memory capped at memoryBytes
 *   link(module, name, signature, fn)           an import answered by a JavaScript function
 *   linkMetering(module, name)                  metering.usegas(i64), charged against the budget
 *   prepare()                                   compile every function
 *   start(fuel), call(name, args, fuel)         run; a trap throws (trapKind says which kind), and
 *                                               when an import threw, what it threw is rethrown
 *   readMemory(ptr, len), writeMemory(ptr, bytes)  guest memory within memoryBytes, or a RangeError
 *   charge(fuel)                                from an import: adds to the running call's fuel;
 *                                               true when that spends its budget
 *   fuelUsed, trapKind, close()
 *
 * Built against wasm3's sources from $WASM3 (see manifest.json); npm run build:firmware
 * syntax-checks this file against the XS headers and the declarations in ./syntax.
 */

#include "xsmc.h"
#include "guest-core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define kMaxArgs 8
#define kMaxName 64
#define kMaxSignature 16

typedef struct {
	GuestCore *core;
	xsMachine *the;			/* set only while start or call runs: imports call back into XS */
} GuestRecord;

void xs_wasm3_destructor(void *data);

static GuestRecord *getGuest(xsMachine *the)
{
	GuestRecord *r = xsmcGetHostDataValidate(xsThis, xs_wasm3_destructor);
	if (!r)
		xsUnknownError("guest closed");
	return r;
}

void xs_wasm3_destructor(void *data)
{
	GuestRecord *r = data;
	if (!r)
		return;
	guestCoreFree(r->core);
	free(r);
}

/* xsVar slots of xs_wasm3_start and xs_wasm3_call that answerImport uses while they run. */
#define kVarResult 0
#define kVarFunction 1
#define kVarArgs 2			/* 4 slots: an import takes at most 4 arguments (WASI fd_write) */
#define kVarThrown 6
#define kVarCount 7

/* An import (guest-core.c converts the values). The xsVar slots belong to xs_wasm3_start or
   xs_wasm3_call, which is running: this is its frame, and kVarThrown keeps what the import threw. */
static int answerImport(void *host, int index, const double *args, int argc, double *result)
{
	GuestRecord *r = host;
	xsMachine *the = r->the;
	int threw = 0, i;

	if (!the)
		return 1;
	xsTry {
		xsmcGet(xsVar(kVarFunction), xsThis, xsID("imports"));
		xsmcGetIndex(xsVar(kVarFunction), xsVar(kVarFunction), index);
		if (argc > 4)
			xsUnknownError("imports take at most 4 arguments");
		for (i = 0; i < argc; i++)
			xsmcSetNumber(xsVar(kVarArgs + i), args[i]);
		switch (argc) {
			case 0: xsVar(kVarResult) = xsCallFunction0(xsVar(kVarFunction), xsUndefined); break;
			case 1: xsVar(kVarResult) = xsCallFunction1(xsVar(kVarFunction), xsUndefined, xsVar(kVarArgs)); break;
			case 2: xsVar(kVarResult) = xsCallFunction2(xsVar(kVarFunction), xsUndefined, xsVar(kVarArgs), xsVar(kVarArgs + 1)); break;
			case 3: xsVar(kVarResult) = xsCallFunction3(xsVar(kVarFunction), xsUndefined, xsVar(kVarArgs), xsVar(kVarArgs + 1), xsVar(kVarArgs + 2)); break;
			default: xsVar(kVarResult) = xsCallFunction4(xsVar(kVarFunction), xsUndefined, xsVar(kVarArgs), xsVar(kVarArgs + 1), xsVar(kVarArgs + 2), xsVar(kVarArgs + 3)); break;
		}
		if (result)
			*result = xsmcToNumber(xsVar(kVarResult));
	}
	xsCatch {
		xsVar(kVarThrown) = xsException;
		threw = 1;
	}
	return threw;
}

/* constructor(wasm, memoryBytes, stackBytes) */
void xs_wasm3_create(xsMachine *the)
{
	void *bytes;
	xsUnsignedValue length;
	GuestRecord *r;
	const char *error;
	int memoryBytes = xsmcToInteger(xsArg(1));
	int stackBytes = xsmcToInteger(xsArg(2));

	xsmcVars(1);
	if ((memoryBytes < 1) || (memoryBytes > 65536) || (stackBytes < 1024) || (stackBytes > 65536))
		xsRangeError("bad limits");
	xsmcGetBufferReadable(xsArg(0), &bytes, &length);
	if ((length < 8) || (length > 65536))
		xsRangeError("wasm module of %d bytes", (int)length);
	r = calloc(1, sizeof(GuestRecord));	/* C heap: the buffer does not move */
	if (!r)
		xsUnknownError("no memory for a guest");
	r->core = guestCoreNew(bytes, (uint32_t)length, (uint32_t)memoryBytes, (uint32_t)stackBytes, answerImport, r, &error);	/* copies the bytes first */
	if (!r->core) {
		free(r);
		xsUnknownError("wasm3: %s", error);
	}
	xsmcSetHostData(xsThis, r);
	xsmcSetNewArray(xsVar(0), 0);
	xsmcSet(xsThis, xsID("imports"), xsVar(0));
}

void xs_wasm3_close(xsMachine *the)
{
	GuestRecord *r = xsmcGetHostData(xsThis);
	if (!r)
		return;
	if (r->the)
		xsUnknownError("guest is running; close it after the call");
	xsmcSetHostData(xsThis, NULL);
	xsmcSetHostDestructor(xsThis, NULL);
	xs_wasm3_destructor(r);
}

/* link(module, name, signature, fn) → true when the guest imports it */
void xs_wasm3_link(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	char module[kMaxName], name[kMaxName], signature[kMaxSignature];
	const char *error;
	int index, linked;

	xsmcVars(1);
	xsmcToStringBuffer(xsArg(0), module, sizeof(module));
	xsmcToStringBuffer(xsArg(1), name, sizeof(name));
	xsmcToStringBuffer(xsArg(2), signature, sizeof(signature));
	xsmcGet(xsVar(0), xsThis, xsID("imports"));
	xsmcGet(xsResult, xsVar(0), xsID("length"));
	index = xsmcToInteger(xsResult);
	linked = guestCoreLink(r->core, module, name, signature, index, &error);
	if (linked < 0)
		xsUnknownError("wasm3: linking %s.%s: %s", module, name, error);
	if (linked)
		xsmcSetIndex(xsVar(0), index, xsArg(3));
	xsmcSetBoolean(xsResult, linked);
}

/* linkMetering(module, name) → true when the guest imports it */
void xs_wasm3_link_metering(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	char module[kMaxName], name[kMaxName];
	const char *error;
	int linked;

	xsmcToStringBuffer(xsArg(0), module, sizeof(module));
	xsmcToStringBuffer(xsArg(1), name, sizeof(name));
	linked = guestCoreLinkMetering(r->core, module, name, &error);
	if (linked < 0)
		xsUnknownError("wasm3: linking %s.%s: %s", module, name, error);
	xsmcSetBoolean(xsResult, linked);
}

void xs_wasm3_prepare(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	const char *why = guestCorePrepare(r->core);
	if (why)
		xsUnknownError("wasm3: %s", why);
}

/* After a start or a call: throws what stopped it (kVarThrown: what an import threw). */
static void settle(xsMachine *the, GuestRecord *r, int kind)
{
	r->the = NULL;
	if (kind == kGuestImport)
		xsThrow(xsVar(kVarThrown));
	if (kind)
		xsUnknownError("%s", guestCoreMessage(r->core));
}

/* start(fuel) */
void xs_wasm3_start(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	double fuel = xsmcToNumber(xsArg(0));

	xsmcVars(kVarCount);	/* also used by answerImport while the start function runs */
	r->the = the;
	settle(the, r, guestCoreStart(r->core, fuel));
}

/* call(name, args, fuel) */
void xs_wasm3_call(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	char name[kMaxName];
	double args[kMaxArgs], fuel, result;
	int argc, i, hasResult, kind;

	xsmcVars(kVarCount);	/* also used by answerImport while the call runs */
	xsmcToStringBuffer(xsArg(0), name, sizeof(name));
	xsmcGet(xsVar(0), xsArg(1), xsID("length"));
	argc = xsmcToInteger(xsVar(0));
	if (argc > kMaxArgs)
		argc = kMaxArgs;
	for (i = 0; i < argc; i++) {
		xsmcGetIndex(xsVar(0), xsArg(1), i);
		args[i] = xsmcToNumber(xsVar(0));
	}
	fuel = xsmcToNumber(xsArg(2));
	r->the = the;
	kind = guestCoreCall(r->core, name, args, (uint32_t)argc, fuel, &result, &hasResult);
	settle(the, r, kind);
	if (hasResult)
		xsmcSetNumber(xsResult, result);
	else
		xsmcSetUndefined(xsResult);
}

void xs_wasm3_get_fuel_used(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	xsmcSetNumber(xsResult, guestCoreFuelUsed(r->core));
}

void xs_wasm3_get_trap_kind(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	xsmcSetInteger(xsResult, guestCoreTrapKind(r->core));
}

/* readMemory(ptr, len) → ArrayBuffer (a copy) */
void xs_wasm3_read_memory(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	double ptr = xsmcToNumber(xsArg(0));
	double len = xsmcToNumber(xsArg(1));
	const uint8_t *p = guestCoreRead(r->core, ptr, len);

	if (!p)
		xsRangeError("guest memory read outside memory_bytes");
	xsmcSetArrayBuffer(xsResult, (void *)p, (xsIntegerValue)len);
}

/* writeMemory(ptr, bytes): bytes is an ArrayBuffer or a view of one */
void xs_wasm3_write_memory(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	double ptr = xsmcToNumber(xsArg(0));
	void *bytes;
	xsUnsignedValue length;
	uint8_t *p;

	xsmcGetBufferReadable(xsArg(1), &bytes, &length);
	p = (uint8_t *)guestCoreRead(r->core, ptr, (double)length);	/* the guest's own memory: writable */
	if (!p)
		xsRangeError("guest memory write outside memory_bytes");
	memcpy(p, bytes, length);
}

/* charge(fuel) → true when the running call's budget is spent */
void xs_wasm3_charge(xsMachine *the)
{
	GuestRecord *r = getGuest(the);
	xsmcSetBoolean(xsResult, guestCoreCharge(r->core, xsmcToNumber(xsArg(0))));
}
