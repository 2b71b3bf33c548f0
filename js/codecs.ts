/** Decode numpy arrays that arrive as binary buffers. */
import type { EncodedArray } from "./model";

const TYPED = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
} as const;

export type Decoded = { data: Float32Array | Float64Array | Int32Array | Uint8Array; shape: number[] };

function bytesOf(buffer: EncodedArray["buffer"]): Uint8Array {
  if (buffer instanceof ArrayBuffer) return new Uint8Array(buffer);
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  throw new TypeError("array buffer is neither an ArrayBuffer nor a view of one");
}

/** Turn `{dtype, shape, buffer}` into a typed array; `null` stays `null`. */
export function decodeArray(enc: EncodedArray | null | undefined): Decoded | null {
  if (!enc) return null;
  const Ctor = TYPED[enc.dtype as keyof typeof TYPED];
  if (!Ctor) throw new TypeError(`unsupported dtype ${JSON.stringify(enc.dtype)}`);
  const bytes = bytesOf(enc.buffer);
  const size = enc.shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== size * Ctor.BYTES_PER_ELEMENT) {
    throw new RangeError(
      `buffer has ${bytes.byteLength} bytes, shape [${enc.shape}] of ${enc.dtype} needs ${size * Ctor.BYTES_PER_ELEMENT}`,
    );
  }
  // copy so the view is aligned whatever offset the buffer came with
  const copy = bytes.slice();
  return { data: new Ctor(copy.buffer, 0, size), shape: enc.shape };
}
