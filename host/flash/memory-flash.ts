// The in-memory NOR flash lives in the core (its tests run under XS too); the host uses the same one.
export { MemoryFlash, type MemoryFlashOptions } from '../../firmware/core/log/memory-flash.js';
