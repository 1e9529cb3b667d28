// Software-only entry points of fpu.cpp (no host fast path), for tests and for comparing
// the two paths. Same semantics as the fpu.h functions of the same name.
#pragma once

#include <cstdint>

#include "engines/emu/riscv64/fpu.h"

namespace doppel::rv64::fpu::soft {

uint32_t f32_add(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags);
uint32_t f32_mul(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags);
uint32_t f32_div(uint32_t a, uint32_t b, Rounding rm, uint8_t& flags);
uint32_t f32_sqrt(uint32_t a, Rounding rm, uint8_t& flags);
uint64_t f64_add(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags);
uint64_t f64_mul(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags);
uint64_t f64_div(uint64_t a, uint64_t b, Rounding rm, uint8_t& flags);
uint64_t f64_sqrt(uint64_t a, Rounding rm, uint8_t& flags);
uint32_t f32_fma(uint32_t a, uint32_t b, uint32_t c, Rounding rm, uint8_t& flags);
uint64_t f64_fma(uint64_t a, uint64_t b, uint64_t c, Rounding rm, uint8_t& flags);
uint32_t f64_to_f32(uint64_t a, Rounding rm, uint8_t& flags);

}  // namespace doppel::rv64::fpu::soft
