// A gzip answer assembled from pieces deflated one by one, so that a piece of output that is the
// same as in the previous scrape (most of a 2,000-guest exposition: limits, sizes, info, one-hot
// states) is sent as last time's compressed bytes, without compressing it again.
// Each piece is raw deflate ended by a sync flush: whole bytes, no final block, no reference to
// data before it (each piece has a deflate stream of its own). Pieces so made follow each other
// in one deflate stream; a final empty block closes it (RFC 1951 3.2.3: BFINAL=1, fixed codes,
// end of block), and the gzip trailer (RFC 1952) needs the CRC-32 and length of the whole, which
// come from the pieces' own by CRC combination (crc32Combine below).
import { constants, crc32, deflateRawSync } from 'node:zlib';
import type { PieceCodec } from './encode.ts';

export interface DeflatedPiece {
  /** Raw deflate blocks, ending on a byte boundary (sync flush), none final. */
  readonly deflated: Buffer;
  /** CRC-32 of the piece's uncompressed bytes. */
  readonly crc: number;
  /** Length of the piece's uncompressed bytes. */
  readonly length: number;
}

/** Level 1: a 4 MB exposition still shrinks ~9x, at a fraction of the CPU of the default 6. */
const DEFLATE_OPTIONS = { level: 1, finishFlush: constants.Z_SYNC_FLUSH };

/** `bytes` deflated (the encoder's buffer: read here, not kept). */
export function deflatePiece(bytes: Buffer): DeflatedPiece {
  return { deflated: exact(deflateRawSync(bytes, DEFLATE_OPTIONS)), crc: crc32(bytes), length: bytes.length };
}

/**
 * The bytes in a buffer of their own size. An output that fits in one of zlib's 16 KiB output
 * chunks comes back as a slice of it, and pieces live as long as they are reused: the ~150 pieces
 * of a 2,000-guest scrape, most of them deflated to a few hundred bytes, held 2.2 MB of malloc'ed
 * chunks for 0.4 MB of output.
 */
function exact(deflated: Buffer): Buffer {
  if (deflated.byteLength === deflated.buffer.byteLength) return deflated;
  const own = Buffer.allocUnsafeSlow(deflated.byteLength);
  deflated.copy(own);
  return own;
}

export const GZIP_PIECES: PieceCodec<DeflatedPiece> = { encode: deflatePiece };

/** Identity answers keep (a copy of) the bytes they sent. */
export const BYTE_PIECES: PieceCodec<Buffer> = { encode: (bytes) => Buffer.from(bytes) };

/** ID1 ID2, CM = deflate, no flags, no mtime, XFL 4 (fastest), OS 3 (Unix), as zlib writes at level 1. */
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x03]);
/** A final block with fixed Huffman codes and nothing but end-of-block. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

/** The CRC and length of a gzip member as its pieces go out. */
export class GzipMember {
  private crc = 0;
  private length = 0;

  /** The member's first bytes. */
  header(): Buffer {
    return GZIP_HEADER;
  }

  /** The bytes to send for `piece`. */
  add(piece: DeflatedPiece): Buffer {
    this.crc = crc32Combine(this.crc, piece.crc, piece.length);
    this.length += piece.length;
    return piece.deflated;
  }

  /** The member's last bytes: the final block, then CRC-32 and length mod 2^32, little-endian. */
  end(): Buffer {
    const tail = Buffer.alloc(FINAL_BLOCK.length + 8);
    FINAL_BLOCK.copy(tail);
    tail.writeUInt32LE(this.crc >>> 0, FINAL_BLOCK.length);
    tail.writeUInt32LE(this.length % 0x1_0000_0000, FINAL_BLOCK.length + 4);
    return tail;
  }
}

// CRC-32 combination. A CRC-32 is the remainder of the message polynomial (times x^32, with the
// pre- and post-inversion) modulo the generator P; for a message A followed by B,
//   crc(AB) = crc(A) * x^(8 * len(B)) mod P  xor  crc(B),
// the inversions cancelling out. Polynomials are 32-bit words in the reflected order CRC-32 uses
// (bit 31 is x^0), so multiplying by x is a right shift with P folded in when x^31's bit falls off.

/** The generator polynomial of CRC-32 (IEEE 802.3), reflected. */
const P = 0xedb88320;
/** x^0 in the reflected order. */
const X0 = 0x80000000;

/** a * b mod P. */
function mulModP(a: number, b: number): number {
  let product = 0;
  for (let bit = X0; a !== 0; bit >>>= 1) {
    if ((a & bit) !== 0) {
      product ^= b;
      a = (a ^ bit) >>> 0;
    }
    b = b & 1 ? (b >>> 1) ^ P : b >>> 1;
  }
  return product >>> 0;
}

/** X_POW_2K[k] = x^(2^k) mod P, for k = 0..31 (the powers repeat modulo 2^32 - 1 no sooner). */
const X_POW_2K: number[] = (() => {
  const table = [X0 >>> 1]; // x^1
  for (let k = 1; k < 32; k++) table.push(mulModP(table[k - 1], table[k - 1]));
  return table;
})();

/** x^(8 * bytes) mod P. */
function xPow8n(bytes: number): number {
  let result = X0;
  // x^(8n) = product of x^(2^(k+3)) over the set bits k of n.
  for (let k = 3, n = bytes; n > 0; k++, n = Math.floor(n / 2)) {
    if (n % 2 === 1) result = mulModP(X_POW_2K[k % 32], result);
  }
  return result;
}

/** The CRC-32 of A followed by B, from crc(A), crc(B) and the length of B. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB === 0) return crcA >>> 0;
  return (mulModP(xPow8n(lengthB), crcA >>> 0) ^ crcB) >>> 0;
}
