/** Ambient declaration for the untyped Emscripten factory of the Speex resampler. */
declare module '@echogarden/speex-resampler-wasm' {
  const createModule: () => Promise<unknown>;
  export default createModule;
}

/** Ambient declaration for RNNoise compiled to WASM (synchronous Emscripten factory). */
declare module '@jitsi/rnnoise-wasm/dist/rnnoise-sync.js' {
  const createRNNWasmModuleSync: () => unknown;
  export default createRNNWasmModuleSync;
}
