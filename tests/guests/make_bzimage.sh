#!/bin/sh
# Wraps tests/guests/long_mode.S into a minimal bzImage (boot protocol 2.15, one setup
# sector, XLF_KERNEL_64): tests/guests/make_bzimage.sh OUT
set -eu
out=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
as --64 -o "$tmp/g.o" "$here/long_mode.S"
ld -m elf_x86_64 -Ttext=0x100000 --oformat binary -o "$tmp/g.bin" "$tmp/g.o"
python3 - "$tmp/g.bin" "$out" <<'PY'
import struct, sys
payload = open(sys.argv[1], 'rb').read()
h = bytearray(1024)
h[0x1f1] = 1                                  # setup_sects
struct.pack_into('<H', h, 0x1fe, 0xaa55)      # boot_flag
h[0x200:0x202] = b'\xeb\x66'                  # jump: header ends at 0x268
h[0x202:0x206] = b'HdrS'
struct.pack_into('<H', h, 0x206, 0x020f)      # protocol 2.15
struct.pack_into('<I', h, 0x22c, 0x7fffffff)  # initrd_addr_max
struct.pack_into('<H', h, 0x236, 1)           # XLF_KERNEL_64
struct.pack_into('<I', h, 0x238, 2048)        # cmdline_size
struct.pack_into('<I', h, 0x260, 0x100000)    # init_size
open(sys.argv[2], 'wb').write(bytes(h) + payload)
PY
