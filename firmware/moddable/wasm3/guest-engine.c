/*
 * gridlet's wasm3 binding for XS: one guest = one wasm3 environment + runtime + module.
 * Exposed to JavaScript as the host class in guest-engine.js (module "gridlet/wasm3"), wrapped into
 * the core's GuestEngine port by engine.ts.
 *
 *   load     constructor(wasm, memoryBytes, stackBytes): copy, parse and load the module, with
 *            wasm3's memory limit set to memoryBytes (GUESTS.md "memory_bytes")
 *   link     link(module, name, signature, fn): an import handled by a JavaScript function,
 *            linkMetering(module, name): `metering.usegas(i64)` charged against the call's fuel
 *   call     call(name, args, fuel): run an export; a trap, exhausted fuel or a memory fault
 *            throws, and trapKind says which
 *   memory   readMemory(ptr, len)
 *
 * Built against wasm3's sources from $WASM3 (see manifest.json); npm run build:firmware
 * syntax-checks this file against the XS headers and the declarations in ./syntax.
 */

#include "xsmc.h"
#include "wasm3.h"
#include "m3_env.h"	/* M3Runtime.memoryLimit */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define kMaxArgs 8
#define kMaxName 64
#define kMaxSignature 16

enum {
	kTrapNone = 0,
	kTrapWasm = 1,		/* the guest trapped (unreachable, divide by zero, a throwing import, …) */
	kTrapFuel = 2,		/* usegas charged more than the call's budget */
	kTrapMemory = 3		/* an access beyond memoryBytes */
};

static const char kOutOfFuel[] = "[trap] out of fuel";
static const char kImportThrew[] = "[trap] import threw";
static const char kBadGas[] = "[trap] negative gas";

typedef struct GuestRecord GuestRecord;
typedef struct ImportRecord ImportRecord;

struct ImportRecord {
	GuestRecord *guest;
	ImportRecord *next;
	int index;							/* position of the function in this.imports */
	char signature[kMaxSignature];
};

struct GuestRecord {
	IM3Environment env;
	IM3Runtime runtime;
	IM3Module module;					/* owned by the runtime once loaded */
	uint8_t loaded;
	uint8_t *wasm;						/* wasm3 keeps pointers into the bytes: they live as long as the module */
	ImportRecord *imports;
	xsMachine *machine;				/* set only while a call runs: imports call back into XS */
	double fuelLimit;
	double fuelUsed;
	int trapKind;
};

void xs_wasm3_destructor(void *data);

static void freeGuest(GuestRecord *g)
{
	if (!g)
		return;
	if (g->runtime)
		m3_FreeRuntime(g->runtime);		/* frees the loaded module too */
	if (g->module && !g->loaded)
		m3_FreeModule(g->module);
	if (g->env)
		m3_FreeEnvironment(g->env);
	while (g->imports) {
		ImportRecord *next = g->imports->next;
		free(g->imports);
		g->imports = next;
	}
	free(g->wasm);
	free(g);
}

static GuestRecord *getGuest(xsMachine *the)
{
	GuestRecord *g = xsmcGetHostDataValidate(xsThis, xs_wasm3_destructor);
	if (!g)
		xsUnknownError("guest closed");
	return g;
}

void xs_wasm3_destructor(void *data)
{
	freeGuest((GuestRecord *)data);
}

/* constructor(wasm, memoryBytes, stackBytes) */
void xs_wasm3_create(xsMachine *the)
{
	void *bytes;
	xsUnsignedValue length;
	M3Result result;
	GuestRecord *g;
	int memoryBytes = xsmcToInteger(xsArg(1));
	int stackBytes = xsmcToInteger(xsArg(2));

	xsmcVars(1);
	xsmcGetBufferReadable(xsArg(0), &bytes, &length);
	if ((length < 8) || (length > 65536))
		xsRangeError("wasm module of %d bytes", (int)length);
	if ((memoryBytes < 0) || (stackBytes < 1024) || (stackBytes > 65536))
		xsRangeError("bad limits");

	g = calloc(1, sizeof(GuestRecord));
	if (!g)
		xsUnknownError("no memory for a guest");
	g->wasm = malloc(length);
	if (!g->wasm) {
		freeGuest(g);
		xsUnknownError("no memory for a guest");
	}
	xsmcGetBufferReadable(xsArg(0), &bytes, &length);	/* the buffer may have moved during the allocations */
	memcpy(g->wasm, bytes, length);

	g->env = m3_NewEnvironment();
	g->runtime = g->env ? m3_NewRuntime(g->env, (uint32_t)stackBytes, g) : NULL;
	if (!g->runtime) {
		freeGuest(g);
		xsUnknownError("no memory for a wasm3 runtime");
	}
	/* Caps both the initial memory and memory.grow: an access beyond it traps as out of bounds. */
	g->runtime->memoryLimit = (uint32_t)memoryBytes;

	result = m3_ParseModule(g->env, &g->module, g->wasm, (uint32_t)length);
	if (!result) {
		result = m3_LoadModule(g->runtime, g->module);
		if (!result)
			g->loaded = 1;
	}
	if (result) {
		freeGuest(g);
		xsUnknownError("wasm3: %s", result);
	}

	xsmcSetHostData(xsThis, g);
	xsmcSetNewArray(xsVar(0), 0);
	xsmcSet(xsThis, xsID("imports"), xsVar(0));
}

void xs_wasm3_close(xsMachine *the)
{
	GuestRecord *g = xsmcGetHostData(xsThis);
	if (!g)
		return;
	xsmcSetHostData(xsThis, NULL);
	xsmcSetHostDestructor(xsThis, NULL);
	freeGuest(g);
}

/* An import: arguments come off wasm3's stack per the signature, go to the JS function as
   numbers, and its result goes back as the signature's return type. A throwing import traps. */
static m3ApiRawFunction(gridletImport)
{
	ImportRecord *import = (ImportRecord *)_ctx->userdata;
	GuestRecord *g = import->guest;
	xsMachine *the = g->machine;
	const char *p = import->signature;
	char returns = p[0];
	uint64_t *ret = NULL;
	double args[kMaxArgs];
	int argc = 0, failed = 0;

	(void)_mem;
	if (!the)
		m3ApiTrap(kImportThrew);
	if (returns != 'v')
		ret = _sp++;
	for (p += 2; *p && (*p != ')') && (argc < kMaxArgs); p++) {
		switch (*p) {
			case 'i': args[argc++] = (double)*(int32_t *)(_sp++); break;
			case 'I': args[argc++] = (double)*(int64_t *)(_sp++); break;
			case 'f': args[argc++] = (double)*(float *)(_sp++); break;
			case 'F': args[argc++] = *(double *)(_sp++); break;
			default: m3ApiTrap(kImportThrew);
		}
	}

	/* xsVar(0..3) belong to xs_wasm3_call, which is running: this is its frame. */
	xsTry {
		int i;
		xsmcGet(xsVar(1), xsThis, xsID("imports"));
		xsmcGetIndex(xsVar(1), xsVar(1), import->index);
		for (i = 0; i < argc; i++)
			xsmcSetNumber(xsVar(i == 0 ? 2 : 3), args[i]);
		switch (argc) {
			case 0: xsVar(0) = xsCallFunction0(xsVar(1), xsUndefined); break;
			case 1: xsVar(0) = xsCallFunction1(xsVar(1), xsUndefined, xsVar(2)); break;
			case 2: xsVar(0) = xsCallFunction2(xsVar(1), xsUndefined, xsVar(2), xsVar(3)); break;
			default: xsUnknownError("imports take at most 2 arguments");
		}
		if (ret) {
			double v = xsmcToNumber(xsVar(0));
			switch (returns) {
				case 'i': *(int32_t *)ret = (int32_t)v; break;
				case 'I': *(int64_t *)ret = (int64_t)v; break;
				case 'f': *(float *)ret = (float)v; break;
				default: *(double *)ret = v; break;
			}
		}
	}
	xsCatch {
		failed = 1;
	}
	if (failed) {
		g->trapKind = kTrapWasm;
		m3ApiTrap(kImportThrew);
	}
	m3ApiSuccess();
}

/* metering.usegas(i64): charges the call's fuel, trapping once it is spent (GUESTS.md "Metering"). */
static m3ApiRawFunction(gridletUseGas)
{
	GuestRecord *g = (GuestRecord *)_ctx->userdata;
	m3ApiGetArg(int64_t, gas);

	(void)runtime;
	(void)_mem;
	if (gas < 0) {
		g->trapKind = kTrapWasm;
		m3ApiTrap(kBadGas);
	}
	g->fuelUsed += (double)gas;
	if (g->fuelUsed > g->fuelLimit) {
		g->trapKind = kTrapFuel;
		m3ApiTrap(kOutOfFuel);
	}
	m3ApiSuccess();
}

static int validSignature(const char *s)
{
	const char *p;
	if (!s[0] || (s[1] != '('))
		return 0;
	if (!strchr("viIfF", s[0]))
		return 0;
	for (p = s + 2; *p && (*p != ')'); p++) {
		if (!strchr("iIfF", *p))
			return 0;
	}
	return (*p == ')') && !p[1] && ((p - s - 2) <= 2);
}

/* link(module, name, signature, fn) → true when the guest imports it */
void xs_wasm3_link(xsMachine *the)
{
	GuestRecord *g = getGuest(the);
	char module[kMaxName], name[kMaxName], signature[kMaxSignature];
	ImportRecord *import;
	M3Result result;
	int index;

	xsmcVars(1);
	xsmcToStringBuffer(xsArg(0), module, sizeof(module));
	xsmcToStringBuffer(xsArg(1), name, sizeof(name));
	xsmcToStringBuffer(xsArg(2), signature, sizeof(signature));
	if (!validSignature(signature))
		xsRangeError("bad import signature %s", signature);

	xsmcGet(xsVar(0), xsThis, xsID("imports"));
	xsmcGet(xsResult, xsVar(0), xsID("length"));
	index = xsmcToInteger(xsResult);

	import = calloc(1, sizeof(ImportRecord));
	if (!import)
		xsUnknownError("no memory for an import");
	import->guest = g;
	import->index = index;
	strcpy(import->signature, signature);

	result = m3_LinkRawFunctionEx(g->module, module, name, signature, gridletImport, import);
	if (result == m3Err_functionLookupFailed) {	/* the guest does not import it */
		free(import);
		xsmcSetFalse(xsResult);
		return;
	}
	if (result) {
		free(import);
		xsUnknownError("wasm3: linking %s.%s: %s", module, name, result);
	}
	import->next = g->imports;
	g->imports = import;
	xsmcSetIndex(xsVar(0), index, xsArg(3));
	xsmcSetTrue(xsResult);
}

/* linkMetering(module, name) → true when the guest imports it */
void xs_wasm3_link_metering(xsMachine *the)
{
	GuestRecord *g = getGuest(the);
	char module[kMaxName], name[kMaxName];
	M3Result result;

	xsmcToStringBuffer(xsArg(0), module, sizeof(module));
	xsmcToStringBuffer(xsArg(1), name, sizeof(name));
	result = m3_LinkRawFunctionEx(g->module, module, name, "v(I)", gridletUseGas, g);
	if (result == m3Err_functionLookupFailed) {
		xsmcSetFalse(xsResult);
		return;
	}
	if (result)
		xsUnknownError("wasm3: linking %s.%s: %s", module, name, result);
	xsmcSetTrue(xsResult);
}

void xs_wasm3_has_export(xsMachine *the)
{
	GuestRecord *g = getGuest(the);
	char name[kMaxName];
	IM3Function f;

	xsmcToStringBuffer(xsArg(0), name, sizeof(name));
	xsmcSetBoolean(xsResult, m3_FindFunction(&f, g->runtime, name) == m3Err_none);
}

typedef union {
	int32_t i32;
	int64_t i64;
	float f32;
	double f64;
} WasmValue;

/* call(name, args, fuel) */
void xs_wasm3_call(xsMachine *the)
{
	GuestRecord *g = getGuest(the);
	char name[kMaxName];
	IM3Function f;
	M3Result result;
	WasmValue values[kMaxArgs];
	const void *pointers[kMaxArgs];
	uint32_t argc, i;

	xsmcVars(4);	/* also used by gridletImport while the call runs */
	xsmcToStringBuffer(xsArg(0), name, sizeof(name));
	result = m3_FindFunction(&f, g->runtime, name);
	if (result)
		xsUnknownError("wasm3: export %s: %s", name, result);

	argc = m3_GetArgCount(f);
	xsmcGet(xsVar(0), xsArg(1), xsID("length"));
	if ((argc > kMaxArgs) || ((uint32_t)xsmcToInteger(xsVar(0)) != argc))
		xsRangeError("export %s takes %d arguments", name, (int)argc);
	for (i = 0; i < argc; i++) {
		double v;
		xsmcGetIndex(xsVar(0), xsArg(1), i);
		v = xsmcToNumber(xsVar(0));
		switch (m3_GetArgType(f, i)) {
			case c_m3Type_i32: values[i].i32 = (int32_t)v; break;
			case c_m3Type_i64: values[i].i64 = (int64_t)v; break;
			case c_m3Type_f32: values[i].f32 = (float)v; break;
			case c_m3Type_f64: values[i].f64 = v; break;
			default: xsTypeError("export %s has an argument of unknown type", name);
		}
		pointers[i] = &values[i];
	}

	g->fuelLimit = xsmcToNumber(xsArg(2));
	g->fuelUsed = 0;
	g->trapKind = kTrapNone;
	g->machine = the;
	result = m3_Call(f, argc, pointers);
	g->machine = NULL;
	if (result) {
		if (kTrapNone == g->trapKind)
			g->trapKind = (result == m3Err_trapOutOfBoundsMemoryAccess) ? kTrapMemory : kTrapWasm;
		xsUnknownError("%s", result);
	}

	if (m3_GetRetCount(f) == 0) {
		xsmcSetUndefined(xsResult);
		return;
	}
	pointers[0] = &values[0];
	result = m3_GetResults(f, 1, pointers);
	if (result)
		xsUnknownError("wasm3: results of %s: %s", name, result);
	switch (m3_GetRetType(f, 0)) {
		case c_m3Type_i32: xsmcSetInteger(xsResult, values[0].i32); break;
		case c_m3Type_i64: xsmcSetNumber(xsResult, (double)values[0].i64); break;
		case c_m3Type_f32: xsmcSetNumber(xsResult, values[0].f32); break;
		default: xsmcSetNumber(xsResult, values[0].f64); break;
	}
}

void xs_wasm3_get_fuel_used(xsMachine *the)
{
	GuestRecord *g = getGuest(the);
	xsmcSetNumber(xsResult, g->fuelUsed);
}

void xs_wasm3_get_trap_kind(xsMachine *the)
{
	GuestRecord *g = getGuest(the);
	xsmcSetInteger(xsResult, g->trapKind);
}

/* readMemory(ptr, len) → ArrayBuffer */
void xs_wasm3_read_memory(xsMachine *the)
{
	GuestRecord *g = getGuest(the);
	int ptr = xsmcToInteger(xsArg(0));
	int len = xsmcToInteger(xsArg(1));
	uint32_t size = 0;
	uint8_t *memory = m3_GetMemory(g->runtime, &size, 0);

	if (!memory || (ptr < 0) || (len < 0) || ((uint32_t)ptr > size) || ((uint32_t)len > size - (uint32_t)ptr))
		xsRangeError("guest memory read %d+%d is outside its %d bytes", ptr, len, (int)size);
	xsmcSetArrayBuffer(xsResult, memory + ptr, len);
}
