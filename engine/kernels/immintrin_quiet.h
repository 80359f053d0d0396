// <immintrin.h> for the files compiled with -mavx512*: GCC 12's AVX-512 headers trip its own
// -Wuninitialized (the _mm512_undefined_* idiom, GCC bug 105593); the warnings point into the
// header, so they are silenced there only. Nothing else lives here (see isa_kernels.h).
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
