"""Writes the edge-*.bin images of this directory (run: python3 mkedge.py)."""
import struct, os
D = os.path.dirname(os.path.abspath(__file__))
MAGIC1 = bytes([0x77,0xc2,0x95,0xf3,0x60,0xd2,0xef,0x7f,0x35,0x52,0x50,0x0f,0x2c,0xb6,0x79,0x80])
MAGIC2 = bytes([0x2d,0xe1,0x5d,0x29,0x41,0x0b,0x8d,0x77,0x67,0x9c,0x11,0x0f,0x1f,0x8a])
def tlv(t, data): return struct.pack('<HH', t, len(data)) + data
def area(magic, tlvs, tot=None):
    body = b''.join(tlvs)
    return struct.pack('<HH', magic, 4 + len(body) if tot is None else tot) + body
def img(body, prot=b'', unprot=b'', hdr=32, flags=0, ver=(1,2,3,4), magic=0x96f3b83d, load=0, protsize=None, imgsize=None):
    h = struct.pack('<IIHHIIBBHII', magic, load, hdr, len(prot) if protsize is None else protsize,
                    len(body) if imgsize is None else imgsize, flags, *ver, 0)
    return h + b'\xff' * (hdr - 32) + body + prot + unprot
def trailer(ma, image_ok=0xff, copy_done=0xff, swap_info=0xff, swap_size=0xffffffff, pad=64, fill=0xff):
    if ma == 8: m = MAGIC1
    else: m = struct.pack('<H', ma) + MAGIC2
    pad = max(pad, 4 * ma + max(ma - 16, 0) + 4)
    t = bytearray([fill] * pad) + m
    n = len(t)
    back = 16 + max(ma - 16, 0) + ma
    t[n - back] = image_ok
    t[n - back - ma] = copy_done
    t[n - back - 2*ma] = swap_info
    s = n - back - 3*ma
    t[s:s+4] = struct.pack('<I', swap_size)
    return bytes(t)
body = bytes(range(40))
sha = tlv(0x10, bytes(range(0x20, 0x40)))
cases = {
 # protected area with varied TLVs (incl. zero length, unknown types, 9 bytes to wrap the data lines)
 'edge-protected': img(body, area(0x6908, [tlv(0x50, b'\x03\0\x02\x01'), tlv(0xa0, b''), tlv(0x60, bytes(range(20))), tlv(0x1234, b'x'*9)]),
                      area(0x6907, [sha, tlv(0xffff, b''), tlv(0x24, bytes(64))])),
 # every known flag plus unknown bits, encrypted => key_field_len; statuses SET/BAD/UNSET/ANY
 'edge-flags-all': img(body, b'', area(0x6907, [sha]), flags=0xffffffff, ver=(255,255,65535,4294967295), load=0x20000000)
                   + trailer(8, image_ok=1, copy_done=2, swap_info=3, swap_size=0x1234),
 'edge-swap-any': img(body, b'', area(0x6907, [sha]), flags=0x8) + trailer(32, image_ok=4, copy_done=0, swap_info=0x11, swap_size=0),
 # only unknown flag bits => empty flags line; invalid trailer magic => warning
 'edge-flags-unknown': img(body, b'', area(0x6907, [sha]), flags=0x1000) + b'\x00' * 40,
 # max_align from the magic: 0 (fields read from the magic itself) and 3 (not a power of two)
 'edge-maxalign0': img(body, b'', area(0x6907, [sha])) + trailer(0, pad=32),
 'edge-maxalign3': img(body, b'', area(0x6907, [sha])) + trailer(3, image_ok=1, swap_size=7),
 'edge-maxalign64-enc': img(body, b'', area(0x6907, [sha]), flags=0x4) + trailer(64, image_ok=1, pad=300),
 # protected TLV overshooting its declared tot (imgtool continues where it stopped),
 # header protected_tlv_size disagreeing with tot (offsets printed from the header)
 'edge-area-overrun': img(body, area(0x6908, [tlv(0x50, b'\x01\x02\x03\x04\x05\x06\x07\x08')], tot=6),
                          area(0x6907, [sha]), protsize=0x40),
 # unprotected tot < 4 and no TLVs; bytes after it make a trailer
 'edge-tot-small': img(body, b'', area(0x6907, [], tot=1)) + trailer(8, pad=8),
 # no unprotected TLVs at all, arbitrary magics (not validated by dumpinfo)
 # imgtool crashes on these (align_up assertion, index out of range): we must fail too
 'edge-err-enc-maxalign3': img(body, b'', area(0x6907, [sha]), flags=0x4) + trailer(3),
 'edge-err-trailer-short': img(body, b'', area(0x6907, [sha])) + b'\xff' * 8 + struct.pack('<H', 0xffff) + MAGIC2,
 'edge-empty': img(body, b'', area(0x1234, []), magic=0xdeadbeef, hdr=0x40, ver=(0, 0, 0, 0)),
}
for k, v in cases.items():
    open(os.path.join(D, k + '.bin'), 'wb').write(v)
print(len(cases))
