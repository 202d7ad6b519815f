// as-pect runs the kernel specs in tests/assembly/ inside wasm (npm test runs it with this config).
export default {
  entries: ["tests/assembly/**/*.spec.ts"],
  include: [],
  disclude: [/node_modules/],
  async instantiate(memory, createImports, instantiate, binary) {
    return instantiate(binary, createImports({ env: { memory } }));
  },
  outputBinary: false,
};
