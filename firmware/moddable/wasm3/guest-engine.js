/*
 * Module "gridlet/wasm3": the host class over guest-engine.c (XS syntax: methods bound to C
 * functions with @). wasm3-guests.ts drives it as the core's GuestEngine port (engine.ts).
 */

class Wasm3Module @ "xs_wasm3_destructor" {
	constructor(wasm, memoryBytes, stackBytes) @ "xs_wasm3_create";
	link(module, name, signature, fn) @ "xs_wasm3_link";
	linkMetering(module, name) @ "xs_wasm3_link_metering";
	prepare() @ "xs_wasm3_prepare";
	start(fuel) @ "xs_wasm3_start";
	call(name, args, fuel) @ "xs_wasm3_call";
	get fuelUsed() @ "xs_wasm3_get_fuel_used";
	get trapKind() @ "xs_wasm3_get_trap_kind";
	readMemory(ptr, len) @ "xs_wasm3_read_memory";
	writeMemory(ptr, bytes) @ "xs_wasm3_write_memory";
	charge(fuel) @ "xs_wasm3_charge";
	close() @ "xs_wasm3_close";
}

export default Wasm3Module;
