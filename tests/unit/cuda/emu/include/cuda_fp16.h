/* EMULATION ONLY */
#pragma once
struct __half { unsigned short x; };
inline __half __ushort_as_half(unsigned short u) { __half h; h.x = u; return h; }
float __half2float(__half h);
