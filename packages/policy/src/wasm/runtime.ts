import { DECISION } from '@apx/core';

/**
 * Helper functions every policy module contains, in WebAssembly text. Strings are (ptr, len)
 * pairs of UTF-8 bytes; conditions are three-valued: 0 false, 1 true, 2 error (CEL's error
 * value, absorbed by && and || exactly as the CEL specification says).
 */
export const RUNTIME_WAT = `
  (global $path_p (mut i32) (i32.const 0))
  (global $path_l (mut i32) (i32.const 0))
  (global $kind (mut i32) (i32.const 0))
  (global $key (mut i32) (i32.const -1))
  (global $kind_p (mut i32) (i32.const 0))
  (global $kind_l (mut i32) (i32.const 0))
  (global $id_p (mut i32) (i32.const 0))
  (global $id_l (mut i32) (i32.const 0))
  (global $ten_p (mut i32) (i32.const 0))
  (global $ten_l (mut i32) (i32.const 0))
  (global $plan_p (mut i32) (i32.const 0))
  (global $plan_l (mut i32) (i32.const 0))
  (global $scopes (mut i32) (i32.const 0))
  (global $roles (mut i32) (i32.const 0))

  (func $memeq (param $a i32) (param $b i32) (param $n i32) (result i32)
    ;; Four bytes at a time while possible (unaligned loads are valid in WebAssembly), then bytes.
    (block $words
      (loop $word
        (br_if $words (i32.lt_u (local.get $n) (i32.const 4)))
        (if (i32.ne (i32.load align=1 (local.get $a)) (i32.load align=1 (local.get $b))) (then (return (i32.const 0))))
        (local.set $a (i32.add (local.get $a) (i32.const 4)))
        (local.set $b (i32.add (local.get $b) (i32.const 4)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $word)))
    (block $no
      (loop $next
        (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
        (br_if $no (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  (func $str_eq (param $p1 i32) (param $l1 i32) (param $p2 i32) (param $l2 i32) (result i32)
    (if (result i32) (i32.ne (local.get $l1) (local.get $l2))
      (then (i32.const 0))
      (else (call $memeq (local.get $p1) (local.get $p2) (local.get $l1)))))

  (func $starts (param $p1 i32) (param $l1 i32) (param $p2 i32) (param $l2 i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $l2) (local.get $l1))
      (then (i32.const 0))
      (else (call $memeq (local.get $p1) (local.get $p2) (local.get $l2)))))

  (func $ends (param $p1 i32) (param $l1 i32) (param $p2 i32) (param $l2 i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $l2) (local.get $l1))
      (then (i32.const 0))
      (else (call $memeq (i32.sub (i32.add (local.get $p1) (local.get $l1)) (local.get $l2)) (local.get $p2) (local.get $l2)))))

  (func $contains (param $p1 i32) (param $l1 i32) (param $p2 i32) (param $l2 i32) (result i32)
    (local $i i32)
    (if (i32.gt_u (local.get $l2) (local.get $l1)) (then (return (i32.const 0))))
    (loop $next
      (if (call $memeq (i32.add (local.get $p1) (local.get $i)) (local.get $p2) (local.get $l2)) (then (return (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.le_u (local.get $i) (i32.sub (local.get $l1) (local.get $l2)))))
    (i32.const 0))

  (func $list_size (param $list i32) (result i32)
    (if (result i32) (local.get $list) (then (i32.load (local.get $list))) (else (i32.const 0))))

  (func $list_has (param $list i32) (param $p i32) (param $l i32) (result i32)
    (local $n i32) (local $e i32)
    (if (i32.eqz (local.get $list)) (then (return (i32.const 0))))
    (local.set $n (i32.load (local.get $list)))
    (local.set $e (i32.add (local.get $list) (i32.const 4)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        ;; Lengths first, inline: most elements differ in length, and a call costs more.
        (if (i32.eq (i32.load offset=4 (local.get $e)) (local.get $l))
          (then (if (call $memeq (i32.load (local.get $e)) (local.get $p) (local.get $l)) (then (return (i32.const 1))))))
        (local.set $e (i32.add (local.get $e) (i32.const 8)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  (func $lists_intersect (param $a i32) (param $b i32) (result i32)
    (local $n i32) (local $e i32)
    (if (i32.eqz (local.get $a)) (then (return (i32.const 0))))
    (local.set $n (i32.load (local.get $a)))
    (local.set $e (i32.add (local.get $a) (i32.const 4)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (if (call $list_has (local.get $b) (i32.load (local.get $e)) (i32.load offset=4 (local.get $e)))
          (then (return (i32.const 1))))
        (local.set $e (i32.add (local.get $e) (i32.const 8)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; Path segment "/<one or more non-slash bytes>" at $pos: new position or -1.
  (func $seg_star (param $pos i32) (result i32)
    (local $end i32)
    (if (i32.ge_u (local.get $pos) (global.get $path_l)) (then (return (i32.const -1))))
    (if (i32.ne (i32.load8_u (i32.add (global.get $path_p) (local.get $pos))) (i32.const 47)) (then (return (i32.const -1))))
    (local.set $end (i32.add (local.get $pos) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $end) (global.get $path_l)))
        (br_if $done (i32.eq (i32.load8_u (i32.add (global.get $path_p) (local.get $end))) (i32.const 47)))
        (local.set $end (i32.add (local.get $end) (i32.const 1)))
        (br $next)))
    (if (result i32) (i32.eq (local.get $end) (i32.add (local.get $pos) (i32.const 1)))
      (then (i32.const -1))
      (else (local.get $end))))

  (func $booleq3 (param $a i32) (param $b i32) (param $negate i32) (result i32)
    (if (i32.or (i32.eq (local.get $a) (i32.const 2)) (i32.eq (local.get $b) (i32.const 2))) (then (return (i32.const 2))))
    (i32.xor (i32.eq (local.get $a) (local.get $b)) (local.get $negate)))

  ;; Writes the decision record; the identity comes from the globals the auth step set.
  (func $out (param $effect i32) (param $status i32) (param $reason i32) (param $route i32) (param $rule i32) (result i32)
    (i32.store (i32.const ${DECISION.effect}) (local.get $effect))
    (i32.store (i32.const ${DECISION.status}) (local.get $status))
    (i32.store (i32.const ${DECISION.reason}) (local.get $reason))
    (i32.store (i32.const ${DECISION.route}) (local.get $route))
    (i32.store (i32.const ${DECISION.rule}) (local.get $rule))
    (i32.store (i32.const ${DECISION.identityKind}) (global.get $kind))
    (i32.store (i32.const ${DECISION.apiKey}) (global.get $key))
    (i32.const 1))
`;
