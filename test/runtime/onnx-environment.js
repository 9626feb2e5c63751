/**
 * Jest environment for test files that run ONNX models inside the Jest process (the in-process ONNX scorer):
 * onnxruntime-node creates its output typed arrays in Node's own realm and then checks them with `instanceof`
 * against the sandbox's globals, which differ under Jest ("A float32 tensor's data must be type of function
 * Float32Array()"). Sharing Node's typed array constructors with the sandbox makes both realms agree.
 * Use with a `@jest-environment ./test/runtime/onnx-environment.js` docblock.
 */
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'ArrayBuffer', 'SharedArrayBuffer', 'DataView', 'Float32Array', 'Float64Array', 'Int8Array', 'Int16Array', 'Int32Array',
  'Uint8Array', 'Uint8ClampedArray', 'Uint16Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array',
];

class OnnxEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = OnnxEnvironment;
