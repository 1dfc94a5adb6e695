"""transform.py — EMULATION ONLY: rewrites a .cu file into C++ for emu_device.h: kernel launches
become emu_launch(kernel, grid, block, smem, stream)(args), extern __shared__ arrays point at the
launch's dynamic shared memory, and the deliberate illegal write of poke.cu's trap kernel sets the
emulator's sticky error instead. usage: transform.py IN.cu OUT.cpp"""
import re, sys
src = open(sys.argv[1]).read()
src = re.sub(r'extern __shared__ (?:__align__\(\d+\) )?(\w+) (\w+)\[\];',
             r'\1 *\2 = (\1 *)emu_dyn_smem();', src)
src = src.replace('{ *bad = 1; }', '{ (void)bad; emu_set_sticky(); }')
out, i = [], 0
while True:
    j = src.find('<<<', i)
    if j < 0:
        out.append(src[i:]); break
    k = j - 1
    while src[k].isalnum() or src[k] == '_': k -= 1
    name = src[k + 1:j]
    e = src.find('>>>', j)
    out.append(src[i:k + 1])
    out.append(f'emu_launch({name}, {src[j + 3:e]})')
    i = e + 3
open(sys.argv[2], 'w').write('#include "emu_device.h"\n#line 1 "' + sys.argv[1] + '"\n' + ''.join(out))
