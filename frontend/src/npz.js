// A small reader for NumPy's .npz (a zip of .npy files) as written by numpy.savez: entries stored
// uncompressed (deflated ones, from savez_compressed, are inflated with DecompressionStream), zip64
// sizes honoured. Arrays come back as {shape, data (Float64Array/Float32Array/...), get(i, j)}.

const DTYPES = {
  f8: Float64Array,
  f4: Float32Array,
  i8: BigInt64Array,
  i4: Int32Array,
  i2: Int16Array,
  i1: Int8Array,
  u8: BigUint64Array,
  u4: Uint32Array,
  u2: Uint16Array,
  u1: Uint8Array,
  b1: Uint8Array,
};

/** Parse one .npy file's bytes. */
export function parseNpy(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const magic = String.fromCharCode(...u8.subarray(1, 6));
  if (u8[0] !== 0x93 || magic !== "NUMPY") throw new Error("not a .npy file");
  const major = u8[6];
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(u8.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "";
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (!descr) throw new Error("npy header without descr");
  const little = descr[0] !== ">";
  const code = descr.slice(1);
  const Typed = DTYPES[code];
  if (!Typed) throw new Error(`unsupported npy dtype ${descr}`);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  const nbytes = count * Typed.BYTES_PER_ELEMENT;
  // Copy into a fresh buffer: inside a zip the data is rarely aligned for a typed array view.
  const copy = u8.slice(offset, offset + nbytes);
  if (!little && Typed.BYTES_PER_ELEMENT > 1) {
    const w = Typed.BYTES_PER_ELEMENT;
    for (let i = 0; i < copy.length; i += w) copy.subarray(i, i + w).reverse();
  }
  const data = new Typed(copy.buffer);
  const cols = shape.length === 2 ? shape[1] : 1;
  const rows = shape.length === 2 ? shape[0] : 1;
  return {
    dtype: descr,
    shape,
    data,
    /** Element (i, j) of a 2-D array (row i, column j), honouring Fortran order. */
    get(i, j = 0) {
      return Number(fortran ? data[j * rows + i] : data[i * cols + j]);
    },
  };
}

async function inflateRaw(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Parse an .npz ArrayBuffer into {name: array} (names without the .npy suffix). */
export async function parseNpz(buffer) {
  const u8 = new Uint8Array(buffer);
  const dv = new DataView(buffer);
  // The end-of-central-directory record sits in the last 22 + 65535 bytes.
  let eocd = -1;
  for (let i = u8.length - 22; i >= Math.max(0, u8.length - 22 - 65535); i--) {
    if (dv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error("not a zip file (no end of central directory)");
  let entries = dv.getUint16(eocd + 10, true);
  let cdOffset = dv.getUint32(eocd + 16, true);
  if (cdOffset === 0xffffffff || entries === 0xffff) {
    // zip64 end-of-central-directory locator just before the EOCD.
    const loc = eocd - 20;
    if (dv.getUint32(loc, true) === 0x07064b50) {
      const z64 = Number(dv.getBigUint64(loc + 8, true));
      entries = Number(dv.getBigUint64(z64 + 32, true));
      cdOffset = Number(dv.getBigUint64(z64 + 48, true));
    }
  }
  const out = {};
  let p = cdOffset;
  for (let n = 0; n < entries; n++) {
    if (dv.getUint32(p, true) !== 0x02014b50) throw new Error("broken zip central directory");
    const method = dv.getUint16(p + 10, true);
    let csize = dv.getUint32(p + 20, true);
    let usize = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let local = dv.getUint32(p + 42, true);
    const name = new TextDecoder().decode(u8.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field (id 1): the 0xffffffff fields, in order usize, csize, local offset.
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = dv.getUint16(e, true);
      const len = dv.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        if (usize === 0xffffffff) {
          usize = Number(dv.getBigUint64(q, true));
          q += 8;
        }
        if (csize === 0xffffffff) {
          csize = Number(dv.getBigUint64(q, true));
          q += 8;
        }
        if (local === 0xffffffff) local = Number(dv.getBigUint64(q, true));
      }
      e += 4 + len;
    }
    p = eEnd + commentLen;
    const lNameLen = dv.getUint16(local + 26, true);
    const lExtraLen = dv.getUint16(local + 28, true);
    const start = local + 30 + lNameLen + lExtraLen;
    let bytes = u8.subarray(start, start + csize);
    if (method === 8) bytes = await inflateRaw(bytes);
    else if (method !== 0) throw new Error(`zip entry ${name}: compression method ${method} not supported`);
    if (bytes.length !== usize) throw new Error(`zip entry ${name}: size ${bytes.length} != ${usize}`);
    out[name.replace(/\.npy$/, "")] = parseNpy(bytes);
  }
  return out;
}
