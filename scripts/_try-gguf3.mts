const path = '/tmp/gg/tiny.gguf';
let t0 = Date.now();
const lap = (what: string) => { console.log(what, Date.now() - t0, 'ms'); t0 = Date.now(); };
const { getLlama, LlamaCompletion, LlamaLogLevel } = await import('node-llama-cpp');
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.warn });
lap('getLlama ' + llama.cpuMathCores + ' ' + llama.maxThreads);
const model = await llama.loadModel({ modelPath: path });
for (const threads of [1, 2, undefined]) {
  const ctx = await model.createContext({ contextSize: 512, sequences: 1, threads });
  const comp = new LlamaCompletion({ contextSequence: ctx.getSequence() });
  lap('ctx ' + threads + ' ' + ctx.currentThreads);
  const out = await comp.generateCompletion('how is the power now?', { maxTokens: 20 });
  lap('completion 20 ' + JSON.stringify(out));
  await ctx.dispose();
}
