declare module "*.wasm" {
  const bytes: Uint8Array<ArrayBuffer>;
  export default bytes;
}

declare module "*.yml" {
  const text: string;
  export default text;
}

declare module "*.txt" {
  const text: string;
  export default text;
}
