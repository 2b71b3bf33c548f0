import { describe, expect, it } from "vitest";
import { decodeArray } from "./codecs";
import type { EncodedArray } from "./model";

function decoded(arr: EncodedArray) {
  const out = decodeArray(arr);
  if (!out) throw new Error("decodeArray returned null");
  return out;
}

describe("decodeArray", () => {
  it("decodes float32 from a DataView with an offset", () => {
    const backing = new ArrayBuffer(4 + 3 * 4);
    new Float32Array(backing, 4, 3).set([0.5, -1.25, 3]);
    const dec = decoded({ dtype: "float32", shape: [3], buffer: new DataView(backing, 4, 12) });
    expect(Array.from(dec.data)).toEqual([0.5, -1.25, 3]);
    expect(dec.shape).toEqual([3]);
  });

  it("decodes bool as bytes and keeps a 2-d shape", () => {
    const dec = decoded({ dtype: "bool", shape: [2, 2], buffer: new Uint8Array([1, 0, 0, 1]) });
    expect(Array.from(dec.data)).toEqual([1, 0, 0, 1]);
    expect(dec.shape).toEqual([2, 2]);
  });

  it("passes null through", () => {
    expect(decodeArray(null)).toBeNull();
  });

  it("rejects a buffer of the wrong size and an unknown dtype", () => {
    expect(() => decodeArray({ dtype: "float32", shape: [2, 2], buffer: new ArrayBuffer(12) })).toThrow(/needs 16/);
    expect(() => decodeArray({ dtype: "complex64", shape: [1], buffer: new ArrayBuffer(8) })).toThrow(
      /unsupported dtype/,
    );
  });
});
