/*
 * FOR SYNTAX CHECKING ONLY (npm run build:firmware): the declarations of wasm3's public API
 * (source/wasm3.h, v0.5) that guest-core.c uses, written from wasm3's documented interface so the
 * binding can be checked without the wasm3 sources. Real builds compile against $WASM3/source.
 */
#ifndef wasm3_h
#define wasm3_h

#include <stddef.h>
#include <stdint.h>

typedef const char *M3Result;

struct M3Environment;	typedef struct M3Environment *IM3Environment;
struct M3Runtime;		typedef struct M3Runtime *IM3Runtime;
struct M3Module;		typedef struct M3Module *IM3Module;
struct M3Function;		typedef struct M3Function *IM3Function;
struct M3Global;		typedef struct M3Global *IM3Global;

typedef enum M3ValueType {
	c_m3Type_none = 0,
	c_m3Type_i32 = 1,
	c_m3Type_i64 = 2,
	c_m3Type_f32 = 3,
	c_m3Type_f64 = 4,
	c_m3Type_unknown
} M3ValueType;

typedef struct M3TaggedValue {
	M3ValueType type;
	union M3ValueUnion {
		uint32_t i32;
		uint64_t i64;
		float f32;
		double f64;
	} value;
} M3TaggedValue, *IM3TaggedValue;

typedef struct M3ImportContext {
	void *userdata;
	IM3Function function;
} M3ImportContext, *IM3ImportContext;

typedef struct M3ErrorInfo {
	M3Result result;
	IM3Runtime runtime;
	IM3Module module;
	IM3Function function;
	const char *file;
	uint32_t line;
	const char *message;
} M3ErrorInfo;

extern const M3Result m3Err_none;
extern const M3Result m3Err_mallocFailed;
extern const M3Result m3Err_functionLookupFailed;
extern const M3Result m3Err_functionImportMissing;
extern const M3Result m3Err_trapOutOfBoundsMemoryAccess;
extern const M3Result m3Err_trapStackOverflow;

IM3Environment m3_NewEnvironment(void);
void m3_FreeEnvironment(IM3Environment i_environment);

IM3Runtime m3_NewRuntime(IM3Environment io_environment, uint32_t i_stackSizeInBytes, void *i_userdata);
void m3_FreeRuntime(IM3Runtime i_runtime);
uint8_t *m3_GetMemory(IM3Runtime i_runtime, uint32_t *o_memorySizeInBytes, uint32_t i_memoryIndex);
uint32_t m3_GetMemorySize(IM3Runtime i_runtime);
void *m3_GetUserData(IM3Runtime i_runtime);

M3Result m3_ParseModule(IM3Environment i_environment, IM3Module *o_module, const uint8_t *const i_wasmBytes, uint32_t i_numWasmBytes);
void m3_FreeModule(IM3Module i_module);
M3Result m3_LoadModule(IM3Runtime io_runtime, IM3Module io_module);
M3Result m3_CompileModule(IM3Module io_module);
M3Result m3_RunStart(IM3Module i_module);

typedef const void *(*M3RawCall)(IM3Runtime runtime, IM3ImportContext _ctx, uint64_t *_sp, void *_mem);
M3Result m3_LinkRawFunction(IM3Module io_module, const char *const i_moduleName, const char *const i_functionName,
	const char *const i_signature, M3RawCall i_function);
M3Result m3_LinkRawFunctionEx(IM3Module io_module, const char *const i_moduleName, const char *const i_functionName,
	const char *const i_signature, M3RawCall i_function, const void *i_userdata);

IM3Global m3_FindGlobal(IM3Module io_module, const char *const i_globalName);
M3Result m3_GetGlobal(IM3Global i_global, IM3TaggedValue o_value);
M3Result m3_SetGlobal(IM3Global i_global, const IM3TaggedValue i_value);

M3Result m3_FindFunction(IM3Function *o_function, IM3Runtime i_runtime, const char *const i_functionName);
uint32_t m3_GetArgCount(IM3Function i_function);
uint32_t m3_GetRetCount(IM3Function i_function);
M3ValueType m3_GetArgType(IM3Function i_function, uint32_t i_index);
M3ValueType m3_GetRetType(IM3Function i_function, uint32_t i_index);
M3Result m3_CallV(IM3Function i_function, ...);
M3Result m3_Call(IM3Function i_function, uint32_t i_argc, const void *i_argptrs[]);
M3Result m3_GetResultsV(IM3Function i_function, ...);
M3Result m3_GetResults(IM3Function i_function, uint32_t i_retc, const void *o_retptrs[]);

void m3_GetErrorInfo(IM3Runtime i_runtime, M3ErrorInfo *o_info);
void m3_ResetErrorInfo(IM3Runtime i_runtime);
const char *m3_GetFunctionName(IM3Function i_function);

#define m3ApiRawFunction(NAME) const void *NAME(IM3Runtime runtime, IM3ImportContext _ctx, uint64_t *_sp, void *_mem)
#define m3ApiGetArg(TYPE, NAME) TYPE NAME = *((TYPE *)(_sp++));
#define m3ApiReturnType(TYPE) TYPE *raw_return = ((TYPE *)(_sp++));
#define m3ApiReturn(VALUE) { *raw_return = (VALUE); return m3Err_none; }
#define m3ApiTrap(VALUE) { return VALUE; }
#define m3ApiSuccess() { return m3Err_none; }

#endif
