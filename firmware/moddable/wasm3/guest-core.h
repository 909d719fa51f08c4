/*
 * gridlet's guest engine over wasm3, platform-neutral: one guest = one wasm3 environment + runtime +
 * module, with GUESTS.md's limits. Two bindings use it, so the meter and the host cannot drift:
 *   guest-engine.c               XS in C (module "gridlet/wasm3") on the meter and the lin simulator;
 *   host/guests/wasm3/glue.c     the same C compiled to WebAssembly with emscripten for Node.
 * The JavaScript side of both is wasm3-guests.ts (it also rewrites memory.grow and drops custom
 * sections before the bytes get here; see there).
 *
 * Semantics (the host engine's, host/guests/wasm-engine.ts):
 *   - fuel: every metering.usegas(i64) call adds its amount to the call's use; past the budget the
 *     call traps (kind fuel), with the region that crossed it charged;
 *   - memory: wasm3's memory limit is set to memoryBytes, so the memory is exactly that long and an
 *     access at or past it traps (kind memory); memory.grow is checked by the rewritten module and
 *     reported through its breach global (kind memory);
 *   - a start function runs once, explicitly, on its own budget (guestCoreStart), never lazily
 *     (wasm3 would run it inside m3_FindFunction with no budget set);
 *   - every function is compiled at load, so a module wasm3 cannot compile fails at load, not in a call;
 *   - an import is a host callback (at most 4 arguments reach it); when it reports that it threw, the
 *     guest traps (kind import) and the binding rethrows what the import threw. An import may charge
 *     fuel to the running call (guestCoreCharge): a world member's call into another is paid by it.
 */
#ifndef gridlet_guest_core_h
#define gridlet_guest_core_h

#include <stdint.h>

/* What stopped the last call (the binding's trapKind; the first three are the core's TrapKind). */
enum {
	kGuestOk = 0,
	kGuestTrap = 1,		/* unreachable, divide by zero, stack overflow, no such export, … */
	kGuestFuel = 2,		/* usegas charged more than the call's budget */
	kGuestMemory = 3,	/* an access at or past memoryBytes, or memory.grow past it */
	kGuestImport = 4	/* an import threw: the binding rethrows the import's exception */
};

/* An import answered by the host: args converted per signature, *result set unless it returns void.
   Returns 0, or non-zero when the host function threw (the binding keeps the exception). */
typedef int (*GuestCoreImport)(void *host, int index, const double *args, int argc, double *result);

typedef struct GuestCore GuestCore;

/* Parses and loads the module (bytes copied) with its memory capped at memoryBytes (1…65536).
   NULL on failure, with *error saying why. */
GuestCore *guestCoreNew(const uint8_t *wasm, uint32_t length, uint32_t memoryBytes, uint32_t stackBytes,
	GuestCoreImport dispatch, void *host, const char **error);
/* Links import module.name (wasm3 signature such as "F(i)") to host import `index`.
   1 linked, 0 the module does not import it, -1 an error (*error). */
int guestCoreLink(GuestCore *g, const char *module, const char *name, const char *signature, int index, const char **error);
/* Links module.name as the usegas(i64) meter. 1, 0 or -1 as guestCoreLink. */
int guestCoreLinkMetering(GuestCore *g, const char *module, const char *name, const char **error);
/* Compiles every function (after linking). NULL, or why the module cannot run. */
const char *guestCorePrepare(GuestCore *g);
/* Runs the start function, if any, with `fuel`. A kGuest… kind; the message says more. */
int guestCoreStart(GuestCore *g, double fuel);
/* Calls export `name` with `fuel`. A kGuest… kind; on kGuestOk, *result (when *hasResult). */
int guestCoreCall(GuestCore *g, const char *name, const double *args, uint32_t argc, double fuel, double *result, int *hasResult);
/* Why the last start or call stopped (or an error). */
const char *guestCoreMessage(GuestCore *g);
int guestCoreTrapKind(GuestCore *g);
double guestCoreFuelUsed(GuestCore *g);
/* Whether a start or a call is running (an import is being answered). */
int guestCoreRunning(GuestCore *g);
/* From an import while a call runs: charges `fuel` to it (work done for it elsewhere, such as a
   world member it called). 1 when that spends its budget (the import then throws the fuel trap). */
int guestCoreCharge(GuestCore *g, double fuel);
/* The memory [ptr, ptr+len) when it lies within memoryBytes and the memory, else NULL. Imports
   write through it too (WASI fd_write's count, clock_time_get's time): the bindings check with it. */
const uint8_t *guestCoreRead(GuestCore *g, double ptr, double len);
/* Frees the guest; never while it runs (the binding defers it). */
void guestCoreFree(GuestCore *g);

/* JavaScript's ToInt32 (what an i32 import result or argument goes through on the host engine). */
int32_t guestCoreToInt32(double v);

#endif
