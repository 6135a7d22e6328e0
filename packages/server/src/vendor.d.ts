/** Ambient declaration for the untyped Emscripten factory of the Speex resampler. */
declare module '@echogarden/speex-resampler-wasm' {
  const createModule: () => Promise<unknown>;
  export default createModule;
}
