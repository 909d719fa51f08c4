/*
 * gridlet's guest engine over wasm3 v0.5, platform-neutral (see guest-core.h). Checked against
 * wasm3's source: what each wasm3 call does is noted where it matters.
 */

#include "guest-core.h"
#include "wasm3.h"
#include "m3_env.h"	/* M3Runtime.memoryLimit */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define kMaxArgs 8
#define kMaxImports 24				/* 11 gridlet, 8 WASI and a few world members */
#define kMaxSignature 16

/* The global the rewritten module sets before trapping on a refused memory.grow (wasm3-guests.ts,
   firmware/core/guests/grow-guard.ts BREACH_EXPORT and BREACH_GROW). */
#define kBreachExport "__gridlet_breach"
#define kBreachGrow (-2)

static const char kOutOfFuel[] = "[trap] out of fuel";
static const char kImportThrew[] = "[trap] import threw";
static const char kBadGas[] = "[trap] negative gas";

typedef struct {
	GuestCore *guest;
	int index;								/* the host's number for the function */
	char signature[kMaxSignature];
} CoreImport;

struct GuestCore {
	IM3Environment env;
	IM3Runtime runtime;
	IM3Module module;						/* owned by the runtime once loaded */
	uint8_t loaded;
	uint8_t running;
	uint8_t *wasm;							/* wasm3 keeps pointers into the bytes: they live as long as the module */
	uint32_t memoryBytes;
	GuestCoreImport dispatch;
	void *host;
	CoreImport imports[kMaxImports];		/* wasm3 keeps a pointer to each as the import's userdata */
	int importCount;
	IM3Global breach;
	double fuelLimit;
	double fuelUsed;
	int trapKind;
	const char *message;
	char text[160];
};

int32_t guestCoreToInt32(double v)
{
	if ((v >= -2147483648.0) && (v <= 2147483647.0))
		return (int32_t)v;					/* truncates toward zero, as ToInt32 does */
	if (!isfinite(v))
		return 0;							/* NaN and ±Infinity */
	v = fmod(trunc(v), 4294967296.0);
	if (v < 0)
		v += 4294967296.0;
	return (int32_t)(uint32_t)v;
}

static int64_t toInt64(double v)
{
	if (!(v == v))
		return 0;
	if (v >= 9223372036854775807.0)
		return INT64_MAX;
	if (v <= -9223372036854775808.0)
		return INT64_MIN;
	return (int64_t)v;
}

static int fail(GuestCore *g, int kind, const char *message)
{
	g->trapKind = kind;
	g->message = message;
	return kind;
}

static int failName(GuestCore *g, const char *format, const char *name)
{
	snprintf(g->text, sizeof(g->text), format, name);
	return fail(g, kGuestTrap, g->text);
}

/* An import: its arguments come off wasm3's stack per the signature (return slot first, then one
   64-bit slot per argument: m3_exec.h op_CallRawFunction, m3ApiGetArg), go to the host as doubles,
   and its result goes back converted as the host engine converts it (ToInt32 for i32). */
static m3ApiRawFunction(coreImport)
{
	CoreImport *import = (CoreImport *)_ctx->userdata;
	GuestCore *g = import->guest;
	const char *p = import->signature;
	char returns = p[0];
	uint64_t *ret = NULL;
	double args[kMaxArgs];
	double result = 0;
	int argc = 0;

	(void)runtime;
	(void)_mem;
	if (returns != 'v')
		ret = _sp++;
	for (p += 2; *p && (*p != ')') && (argc < kMaxArgs); p++) {
		switch (*p) {
			case 'i': args[argc++] = (double)*(int32_t *)(_sp++); break;
			case 'I': args[argc++] = (double)*(int64_t *)(_sp++); break;
			case 'f': args[argc++] = (double)*(float *)(_sp++); break;
			default: args[argc++] = *(double *)(_sp++); break;
		}
	}
	if (g->dispatch(g->host, import->index, args, argc, &result)) {
		g->trapKind = kGuestImport;
		m3ApiTrap(kImportThrew);
	}
	if (ret) {
		switch (returns) {
			case 'i': *(int32_t *)ret = guestCoreToInt32(result); break;
			case 'I': *(int64_t *)ret = toInt64(result); break;
			case 'f': *(float *)ret = (float)result; break;
			default: *(double *)ret = result; break;
		}
	}
	m3ApiSuccess();
}

/* metering.usegas(i64): charges the running call's fuel and traps once it is spent (GUESTS.md
   "Metering"); the amount that crossed the budget is counted, as on the host engine. */
static m3ApiRawFunction(coreUseGas)
{
	GuestCore *g = (GuestCore *)_ctx->userdata;
	m3ApiGetArg(int64_t, gas);

	(void)runtime;
	(void)_mem;
	if (gas < 0) {
		g->trapKind = kGuestTrap;
		m3ApiTrap(kBadGas);
	}
	g->fuelUsed += (double)gas;
	if (g->fuelUsed > g->fuelLimit) {
		g->trapKind = kGuestFuel;
		m3ApiTrap(kOutOfFuel);
	}
	m3ApiSuccess();
}

static int validSignature(const char *s)
{
	const char *p;
	if (!s[0] || (s[1] != '(') || !strchr("viIfF", s[0]))
		return 0;
	for (p = s + 2; *p && (*p != ')'); p++) {
		if (!strchr("iIfF", *p))
			return 0;
	}
	return (*p == ')') && !p[1] && ((p - s - 2) <= kMaxArgs);
}

GuestCore *guestCoreNew(const uint8_t *wasm, uint32_t length, uint32_t memoryBytes, uint32_t stackBytes,
	GuestCoreImport dispatch, void *host, const char **error)
{
	GuestCore *g;
	M3Result result;

	*error = NULL;
	if ((length < 8) || (memoryBytes < 1) || (memoryBytes > 65536) || (stackBytes < 1024) || (stackBytes > 65536)) {
		*error = "bad module size or limits";
		return NULL;
	}
	g = calloc(1, sizeof(GuestCore));
	if (g)
		g->wasm = malloc(length);
	if (!g || !g->wasm) {
		free(g);
		*error = "no memory for a guest";
		return NULL;
	}
	memcpy(g->wasm, wasm, length);
	g->memoryBytes = memoryBytes;
	g->dispatch = dispatch;
	g->host = host;

	g->env = m3_NewEnvironment();
	g->runtime = g->env ? m3_NewRuntime(g->env, stackBytes, g) : NULL;
	if (!g->runtime) {
		guestCoreFree(g);
		*error = "no memory for a wasm3 runtime";
		return NULL;
	}
	/* m3_env.c ResizeMemory: the memory is min(pages * 64 KiB, memoryLimit) bytes long, at load and
	   at every memory.grow; loads and stores check `address + offset + size <= length` in 64 bits.
	   So the memory ends exactly at memoryBytes (manifests allow at most one page). */
	g->runtime->memoryLimit = memoryBytes;

	result = m3_ParseModule(g->env, &g->module, g->wasm, length);	/* frees its module on failure */
	if (!result) {
		result = m3_LoadModule(g->runtime, g->module);
		if (!result)
			g->loaded = 1;
	}
	if (result) {
		guestCoreFree(g);
		*error = result;
		return NULL;
	}
	return g;
}

int guestCoreLink(GuestCore *g, const char *module, const char *name, const char *signature, int index, const char **error)
{
	CoreImport *import;
	M3Result result;

	*error = NULL;
	if (!validSignature(signature)) {
		*error = "bad import signature";
		return -1;
	}
	if (g->importCount >= kMaxImports) {
		*error = "too many imports";
		return -1;
	}
	import = &g->imports[g->importCount];
	import->guest = g;
	import->index = index;
	strcpy(import->signature, signature);
	/* m3_bind.c: links every import of that module and name, after checking its signature. */
	result = m3_LinkRawFunctionEx(g->module, module, name, signature, coreImport, import);
	if (result == m3Err_functionLookupFailed)
		return 0;
	if (result) {
		*error = result;
		return -1;
	}
	g->importCount++;
	return 1;
}

int guestCoreLinkMetering(GuestCore *g, const char *module, const char *name, const char **error)
{
	M3Result result = m3_LinkRawFunctionEx(g->module, module, name, "v(I)", coreUseGas, g);

	*error = NULL;
	if (result == m3Err_functionLookupFailed)
		return 0;
	if (result) {
		*error = result;
		return -1;
	}
	return 1;
}

const char *guestCorePrepare(GuestCore *g)
{
	M3Result result;
	M3ErrorInfo info;

	/* wasm3 compiles a function on its first call by default: a function it cannot compile (or a
	   call to an import nobody linked, m3_compile.c Compile_Call) would trap in the middle of a call. */
	result = m3_CompileModule(g->module);
	if (result) {
		m3_GetErrorInfo(g->runtime, &info);
		if (info.message && info.message[0])
			snprintf(g->text, sizeof(g->text), "%s (%s)", result, info.message);
		else
			snprintf(g->text, sizeof(g->text), "%s", result);
		return g->text;
	}
	g->breach = m3_FindGlobal(g->module, kBreachExport);
	return NULL;
}

static void begin(GuestCore *g, double fuel)
{
	g->fuelLimit = fuel;
	g->fuelUsed = 0;
	g->trapKind = kGuestOk;
	g->message = NULL;
	g->running = 1;
}

static int finish(GuestCore *g, M3Result result)
{
	M3TaggedValue breach;

	g->running = 0;
	if (!result)
		return kGuestOk;
	if (g->trapKind != kGuestOk)			/* fuel, a throwing import or negative gas said why */
		return fail(g, g->trapKind, result);
	if (g->breach && !m3_GetGlobal(g->breach, &breach) && ((int64_t)breach.value.i64 == kBreachGrow)) {
		breach.value.i64 = (uint64_t)(int64_t)-1;
		m3_SetGlobal(g->breach, &breach);
		snprintf(g->text, sizeof(g->text), "memory.grow past memory_bytes %u", (unsigned)g->memoryBytes);
		return fail(g, kGuestMemory, g->text);
	}
	if (result == m3Err_trapOutOfBoundsMemoryAccess) {
		snprintf(g->text, sizeof(g->text), "%s (memory_bytes %u)", result, (unsigned)g->memoryBytes);
		return fail(g, kGuestMemory, g->text);
	}
	return fail(g, kGuestTrap, result);
}

int guestCoreStart(GuestCore *g, double fuel)
{
	if (g->running)
		return fail(g, kGuestTrap, "the guest is running");
	begin(g, fuel);
	/* m3_env.c m3_RunStart: runs the start function if the module has one and marks it done; left
	   to wasm3, it would run inside the first m3_FindFunction, with whatever budget was set then. */
	return finish(g, m3_RunStart(g->module));
}

typedef union {
	int32_t i32;
	int64_t i64;
	float f32;
	double f64;
} WasmValue;

int guestCoreCall(GuestCore *g, const char *name, const double *args, uint32_t argc, double fuel, double *result, int *hasResult)
{
	IM3Function f;
	M3Result r;
	WasmValue values[kMaxArgs];
	const void *pointers[kMaxArgs];
	uint32_t count, returns, i;

	*hasResult = 0;
	if (g->running)
		return fail(g, kGuestTrap, "the guest is running: an import called back into it");
	g->fuelUsed = 0;
	/* The JavaScript side drops custom sections, so the names m3_FindFunction matches are export
	   names (a "name" section could otherwise give any function an export's name). */
	r = m3_FindFunction(&f, g->runtime, name);
	if (r)
		return failName(g, "the guest has no export \"%s\"", name);
	count = m3_GetArgCount(f);
	returns = m3_GetRetCount(f);
	if ((count > kMaxArgs) || (returns > kMaxArgs))
		return failName(g, "export \"%s\" has too many parameters or results", name);
	/* As a JavaScript call of a WebAssembly export: missing arguments are undefined (0 as i32, NaN
	   as a float), extra ones are ignored; i64 takes a BigInt there, so it is refused here too. */
	for (i = 0; i < count; i++) {
		double v = (i < argc) ? args[i] : NAN;
		switch (m3_GetArgType(f, i)) {
			case c_m3Type_i32: values[i].i32 = guestCoreToInt32(v); break;
			case c_m3Type_f32: values[i].f32 = (float)v; break;
			case c_m3Type_f64: values[i].f64 = v; break;
			default: return failName(g, "export \"%s\" takes an i64 (a BigInt on the host)", name);
		}
		pointers[i] = &values[i];
	}
	begin(g, fuel);
	r = m3_Call(f, count, pointers);
	if (finish(g, r))
		return g->trapKind;
	if (returns == 0)
		return kGuestOk;
	for (i = 0; i < returns; i++)
		pointers[i] = &values[i];
	r = m3_GetResults(f, returns, pointers);
	if (r)
		return fail(g, kGuestTrap, r);
	switch (m3_GetRetType(f, 0)) {
		case c_m3Type_i32: *result = values[0].i32; break;
		case c_m3Type_i64: *result = (double)values[0].i64; break;
		case c_m3Type_f32: *result = values[0].f32; break;
		default: *result = values[0].f64; break;
	}
	*hasResult = 1;
	return kGuestOk;
}

const char *guestCoreMessage(GuestCore *g)
{
	return g->message ? g->message : "";
}

int guestCoreTrapKind(GuestCore *g)
{
	return g->trapKind;
}

double guestCoreFuelUsed(GuestCore *g)
{
	return g->fuelUsed;
}

int guestCoreRunning(GuestCore *g)
{
	return g->running;
}

int guestCoreCharge(GuestCore *g, double fuel)
{
	if (!g->running || !(fuel >= 0))
		return 0;
	g->fuelUsed += fuel;
	return g->fuelUsed > g->fuelLimit;
}

const uint8_t *guestCoreRead(GuestCore *g, double ptr, double len)
{
	static const uint8_t empty[1] = { 0 };
	uint32_t size = 0;
	uint8_t *memory = m3_GetMemory(g->runtime, &size, 0);	/* NULL when the memory has no bytes */
	double limit = (size < g->memoryBytes) ? size : g->memoryBytes;

	if (!(ptr >= 0) || !(len >= 0) || (ptr != floor(ptr)) || (len != floor(len)) || (ptr + len > limit))
		return NULL;
	return memory ? memory + (uint32_t)ptr : empty;
}

void guestCoreFree(GuestCore *g)
{
	if (!g)
		return;
	if (g->runtime)
		m3_FreeRuntime(g->runtime);		/* frees the loaded module too */
	if (g->module && !g->loaded)
		m3_FreeModule(g->module);
	if (g->env)
		m3_FreeEnvironment(g->env);
	free(g->wasm);
	free(g);
}
