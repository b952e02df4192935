;; The merge's inner loops in WebAssembly SIMD, four elements at a time. Every function takes byte
;; offsets into the one memory and an element count; a tail of fewer than four elements goes
;; through the same arithmetic one lane at a time (as a v128 with the rest zero), so no element's
;; result depends on where a chunk starts or ends.
;;
;; Exactness: inputs are widened to f64 (exact), sums are f64 multiply then add in model order
;; (no fused multiply-add, so the same bits as the JavaScript reference), and the result is
;; rounded once: to f32 by nearest-even, and to f16/bf16 through an f32 rounded to odd, whose
;; extra bits make the second rounding to nearest-even the correct rounding of the f64 value.
(module
  (memory (export "memory") 1)

;; f16 bits (in i32 lanes) → f32: the bits moved to an f32's place and multiplied by 2¹¹² (exact,
  ;; subnormals included), with exponent 31 (inf, nan) made exponent 255, and the sign put back.
  (func $half_to_f32 (param $h v128) (result v128)
    (local $o v128)
    (local.set $o (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13)))
    (v128.or
      (v128.or
        (f32x4.mul (local.get $o) (v128.const i32x4 0x77800000 0x77800000 0x77800000 0x77800000))
        (v128.and
          (i32x4.ge_u (local.get $o) (v128.const i32x4 0x0f800000 0x0f800000 0x0f800000 0x0f800000))
          (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)))
      (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))))

  (func (export "decode_f16") (param $src i32) (param $dst i32) (param $n i32)
    (local $j i32) (local $h v128) (local $o v128) (local $p v128)
    ;; Eight at a time, with $half_to_f32's arithmetic written out (a call per four costs more than it does).
    (block $done8
      (loop $next8
        (br_if $done8 (i32.gt_s (i32.add (local.get $j) (i32.const 8)) (local.get $n)))
        (local.set $h (v128.load (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 1)))))
        (local.set $p (i32x4.extend_low_i16x8_u (local.get $h)))
        (local.set $o (i32x4.shl (v128.and (local.get $p) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13)))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
          (v128.or
            (v128.or
              (f32x4.mul (local.get $o) (v128.const i32x4 0x77800000 0x77800000 0x77800000 0x77800000))
              (v128.and
                (i32x4.ge_u (local.get $o) (v128.const i32x4 0x0f800000 0x0f800000 0x0f800000 0x0f800000))
                (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)))
            (i32x4.shl (v128.and (local.get $p) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))))
        (local.set $p (i32x4.extend_high_i16x8_u (local.get $h)))
        (local.set $o (i32x4.shl (v128.and (local.get $p) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13)))
        (v128.store offset=16 (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
          (v128.or
            (v128.or
              (f32x4.mul (local.get $o) (v128.const i32x4 0x77800000 0x77800000 0x77800000 0x77800000))
              (v128.and
                (i32x4.ge_u (local.get $o) (v128.const i32x4 0x0f800000 0x0f800000 0x0f800000 0x0f800000))
                (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)))
            (i32x4.shl (v128.and (local.get $p) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))))
        (local.set $j (i32.add (local.get $j) (i32.const 8)))
        (br $next8)))
    (block $done
      (loop $next
        (br_if $done (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $n)))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
          (call $half_to_f32 (v128.load16x4_u (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 1))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $next)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_s (local.get $j) (local.get $n)))
        (v128.store32_lane 0 (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
          (call $half_to_f32 (i32x4.splat (i32.load16_u (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 1)))))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $tail))))

  (func (export "decode_bf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $j i32)
    (block $done
      (loop $next
        (br_if $done (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $n)))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
          (i32x4.shl (v128.load16x4_u (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 1)))) (i32.const 16)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $next)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_s (local.get $j) (local.get $n)))
        (i32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
          (i32.shl (i32.load16_u (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 1)))) (i32.const 16)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $tail))))

  ;; acc[j] = ((0 + w₀·x₀[j]) + w₁·x₁[j]) + … over k inputs, with an optional base b:
  ;; acc[j] = (… + wᵢ·(xᵢ[j] − b[j]) …) + b[j] (task vectors). $xs holds k i32 pointers to f32
  ;; arrays of one type (decoded here, so a 16-bit input is read once), $ws k f64 weights; $base is
  ;; 0 for none. TEMPLATE: scripts/build-wasm.mjs stamps a $sum4_f32, $sum4_bf16 and $sum4_f16,
  ;; each with its own decoding written out in place of (load4 ADDRESS @) (a call per four
  ;; elements would cost half the speed).
  (func $sum4_KIND (param $j i32) (param $xs i32) (param $ws i32) (param $k i32) (param $base i32) (param $acc i32)
    (local $i i32) (local $lo v128) (local $hi v128) (local $x v128) (local $w v128) (local $b v128)
    (local $blo v128) (local $bhi v128) (local $xlo v128) (local $xhi v128) (local $h v128) (local $o v128)
    (if (local.get $base)
      (then
        (local.set $b (load4 (local.get $base) @))
        (local.set $blo (f64x2.promote_low_f32x4 (local.get $b)))
        (local.set $bhi (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $b) (local.get $b))))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_s (local.get $i) (local.get $k)))
        (local.set $x (load4 (i32.load (i32.add (local.get $xs) (i32.shl (local.get $i) (i32.const 2)))) @))
        (local.set $w (v128.load64_splat (i32.add (local.get $ws) (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $xlo (f64x2.promote_low_f32x4 (local.get $x)))
        (local.set $xhi (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))
        (if (local.get $base)
          (then
            (local.set $xlo (f64x2.sub (local.get $xlo) (local.get $blo)))
            (local.set $xhi (f64x2.sub (local.get $xhi) (local.get $bhi)))))
        (local.set $lo (f64x2.add (local.get $lo) (f64x2.mul (local.get $w) (local.get $xlo))))
        (local.set $hi (f64x2.add (local.get $hi) (f64x2.mul (local.get $w) (local.get $xhi))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (if (local.get $base)
      (then
        (local.set $lo (f64x2.add (local.get $lo) (local.get $blo)))
        (local.set $hi (f64x2.add (local.get $hi) (local.get $bhi)))))
    (v128.store (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))) (local.get $lo))
    (v128.store (i32.add (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))) (i32.const 16)) (local.get $hi)))

  (func $sum4 (param $kind i32) (param $j i32) (param $xs i32) (param $ws i32) (param $k i32) (param $base i32) (param $acc i32)
    (if (i32.eqz (local.get $kind))
      (then (call $sum4_f32 (local.get $j) (local.get $xs) (local.get $ws) (local.get $k) (local.get $base) (local.get $acc)))
      (else
        (if (i32.eq (local.get $kind) (i32.const 1))
          (then (call $sum4_bf16 (local.get $j) (local.get $xs) (local.get $ws) (local.get $k) (local.get $base) (local.get $acc)))
          (else (call $sum4_f16 (local.get $j) (local.get $xs) (local.get $ws) (local.get $k) (local.get $base) (local.get $acc)))))))

  ;; The tail (n mod 4 elements) goes through $sum4 on copies padded with zeros in $pad (room for
  ;; k + 1 arrays of four f32, then four f64), so every element gets the same arithmetic.
  (func (export "weighted_sum") (param $acc i32) (param $xs i32) (param $ws i32) (param $k i32) (param $base i32) (param $n i32) (param $pad i32) (param $kind i32)
    (local $j i32) (local $i i32) (local $r i32) (local $t i32) (local $ptrs i32) (local $pbase i32) (local $width i32)
    (local.set $width (select (i32.const 4) (i32.const 2) (i32.eqz (local.get $kind))))
    (block $done
      (loop $next
        (br_if $done (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $n)))
        (call $sum4 (local.get $kind) (local.get $j) (local.get $xs) (local.get $ws) (local.get $k) (local.get $base) (local.get $acc))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $next)))
    (local.set $r (i32.sub (local.get $n) (local.get $j)))
    (if (i32.eqz (local.get $r)) (then (return)))
    ;; $pad: k+1 arrays of 16 bytes, then k pointers, then 32 bytes of output.
    (local.set $ptrs (i32.add (local.get $pad) (i32.shl (i32.add (local.get $k) (i32.const 1)) (i32.const 4))))
    (local.set $i (i32.const 0))
    (block $copied
      (loop $copy
        (br_if $copied (i32.gt_s (local.get $i) (local.get $k)))
        (v128.store (i32.add (local.get $pad) (i32.shl (local.get $i) (i32.const 4))) (v128.const i32x4 0 0 0 0))
        (if (i32.lt_s (local.get $i) (local.get $k))
          (then
            (memory.copy (i32.add (local.get $pad) (i32.shl (local.get $i) (i32.const 4)))
              (i32.add (i32.load (i32.add (local.get $xs) (i32.shl (local.get $i) (i32.const 2)))) (i32.mul (local.get $j) (local.get $width)))
              (i32.mul (local.get $r) (local.get $width)))
            (i32.store (i32.add (local.get $ptrs) (i32.shl (local.get $i) (i32.const 2))) (i32.add (local.get $pad) (i32.shl (local.get $i) (i32.const 4)))))
          (else
            (if (local.get $base)
              (then
                (memory.copy (i32.add (local.get $pad) (i32.shl (local.get $i) (i32.const 4)))
                  (i32.add (local.get $base) (i32.mul (local.get $j) (local.get $width)))
                  (i32.mul (local.get $r) (local.get $width)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (local.set $pbase (select (i32.add (local.get $pad) (i32.shl (local.get $k) (i32.const 4))) (i32.const 0) (local.get $base)))
    (local.set $t (i32.add (local.get $ptrs) (i32.shl (local.get $k) (i32.const 2))))
    (call $sum4 (local.get $kind) (i32.const 0) (local.get $ptrs) (local.get $ws) (local.get $k) (local.get $pbase) (local.get $t))
    (memory.copy (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))) (local.get $t) (i32.shl (local.get $r) (i32.const 3))))

  ;; Four f64 → four f32 rounded to nearest even.
  (func $demote4 (param $p i32) (result v128)
    (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
      (f32x4.demote_f64x2_zero (v128.load (local.get $p)))
      (f32x4.demote_f64x2_zero (v128.load offset=16 (local.get $p)))))

  ;; Four f64 → four f32 rounded to odd: nearest-even, then, where that was inexact, the value
  ;; truncated toward zero with its last bit set.
  (func $odd4 (param $p i32) (result v128)
    (local $r v128) (local $lo v128) (local $hi v128) (local $inexact v128) (local $up v128)
    (local.set $r (call $demote4 (local.get $p)))
    (local.set $lo (v128.load (local.get $p)))
    (local.set $hi (v128.load offset=16 (local.get $p)))
    (local.set $inexact
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27
        (f64x2.ne (f64x2.promote_low_f32x4 (local.get $r)) (local.get $lo))
        (f64x2.ne (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $r) (local.get $r))) (local.get $hi))))
    (local.set $up
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27
        (f64x2.gt (f64x2.abs (f64x2.promote_low_f32x4 (local.get $r))) (f64x2.abs (local.get $lo)))
        (f64x2.gt (f64x2.abs (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $r) (local.get $r)))) (f64x2.abs (local.get $hi)))))
    ;; Adding the all-ones mask subtracts one: the magnitude below a value rounded up.
    (v128.bitselect
      (v128.or (i32x4.add (local.get $r) (local.get $up)) (v128.const i32x4 1 1 1 1))
      (local.get $r)
      (local.get $inexact)))

  (func $bf16_of (param $f v128) (result v128)
    (v128.bitselect
      (v128.or (i32x4.shr_u (local.get $f) (i32.const 16)) (v128.const i32x4 0x40 0x40 0x40 0x40))
      (i32x4.shr_u
        (i32x4.add
          (i32x4.add (local.get $f) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))
          (v128.and (i32x4.shr_u (local.get $f) (i32.const 16)) (v128.const i32x4 1 1 1 1)))
        (i32.const 16))
      (i32x4.gt_u (v128.and (local.get $f) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))))

  ;; f32 bits → f16 bits, nearest-even: NaN stays NaN (quiet), too large is infinity, below
  ;; 2⁻¹⁴ the value is aligned by adding 0.5 (an f32 addition rounds it), else the exponent is
  ;; rebiased and the mantissa rounded by adding 0xfff plus its lowest kept bit.
  (func $f16_of (param $f v128) (result v128)
    (local $a v128) (local $sub v128) (local $norm v128) (local $o v128)
    (local.set $a (v128.and (local.get $f) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)))
    (local.set $sub
      (i32x4.sub
        (f32x4.add (local.get $a) (v128.const f32x4 0.5 0.5 0.5 0.5))
        (v128.const i32x4 0x3f000000 0x3f000000 0x3f000000 0x3f000000)))
    (local.set $norm
      (i32x4.shr_u
        (i32x4.add
          (i32x4.add (local.get $a) (v128.const i32x4 0xc8000fff 0xc8000fff 0xc8000fff 0xc8000fff))
          (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (v128.const i32x4 1 1 1 1)))
        (i32.const 13)))
    (local.set $o (v128.bitselect (local.get $sub) (local.get $norm) (i32x4.lt_u (local.get $a) (v128.const i32x4 0x38800000 0x38800000 0x38800000 0x38800000))))
    (local.set $o
      (v128.bitselect
        (v128.bitselect (v128.const i32x4 0x7e00 0x7e00 0x7e00 0x7e00) (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00)
          (i32x4.gt_u (local.get $a) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)))
        (local.get $o)
        (i32x4.ge_u (local.get $a) (v128.const i32x4 0x47800000 0x47800000 0x47800000 0x47800000))))
    (v128.or (local.get $o) (v128.and (i32x4.shr_u (local.get $f) (i32.const 16)) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))))

  ;; $kind: 0 f32, 1 bf16, 2 f16. The tail is padded into $pad (32 bytes of f64, then 16 out).
  (func $encode4 (param $kind i32) (param $p i32) (result v128)
    (if (result v128) (i32.eqz (local.get $kind))
      (then (call $demote4 (local.get $p)))
      (else
        (if (result v128) (i32.eq (local.get $kind) (i32.const 1))
          (then (call $bf16_of (call $odd4 (local.get $p))))
          (else (call $f16_of (call $odd4 (local.get $p))))))))

  (func (export "encode") (param $kind i32) (param $acc i32) (param $dst i32) (param $n i32) (param $pad i32)
    (local $j i32) (local $r i32) (local $v v128) (local $width i32)
    (local.set $width (select (i32.const 4) (i32.const 2) (i32.eqz (local.get $kind))))
    (block $done
      (loop $next
        (br_if $done (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $n)))
        (local.set $v (call $encode4 (local.get $kind) (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3)))))
        (if (i32.eqz (local.get $kind))
          (then (v128.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))) (local.get $v)))
          (else (v128.store64_lane 0 (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 1))) (i16x8.narrow_i32x4_u (local.get $v) (local.get $v)))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $next)))
    (local.set $r (i32.sub (local.get $n) (local.get $j)))
    (if (i32.eqz (local.get $r)) (then (return)))
    (v128.store (local.get $pad) (v128.const i32x4 0 0 0 0))
    (v128.store offset=16 (local.get $pad) (v128.const i32x4 0 0 0 0))
    (memory.copy (local.get $pad) (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))) (i32.shl (local.get $r) (i32.const 3)))
    (local.set $v (call $encode4 (local.get $kind) (local.get $pad)))
    (if (i32.eqz (local.get $kind))
      (then (v128.store offset=32 (local.get $pad) (local.get $v)))
      (else (v128.store64_lane offset=32 0 (local.get $pad) (i16x8.narrow_i32x4_u (local.get $v) (local.get $v)))))
    (memory.copy (i32.add (local.get $dst) (i32.mul (local.get $j) (local.get $width))) (i32.add (local.get $pad) (i32.const 32)) (i32.mul (local.get $r) (local.get $width))))
)
