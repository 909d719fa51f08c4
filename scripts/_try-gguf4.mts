let t0 = Date.now();
const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
const llama = await getLlama({ build: 'never', logLevel: LlamaLogLevel.warn, logger: (l, m) => console.log('LOG', l, m) });
console.log('auto ->', llama.gpu, Date.now() - t0, 'ms');
