/*
 * FOR SYNTAX CHECKING ONLY: the one member of wasm3's internal M3Runtime (source/m3_env.h) that
 * guest-core.c touches. The real struct has many more members; real builds use $WASM3/source.
 */
#ifndef m3_env_h
#define m3_env_h

#include "wasm3.h"

struct M3Runtime {
	uint32_t memoryLimit;	/* bytes; 0 = no limit */
};

#endif
