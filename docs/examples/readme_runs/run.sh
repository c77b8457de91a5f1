#!/usr/bin/env bash
# The commands behind the README's probe tables (run 2026-12-05 on the 2-core CPU; wall times
# in timings.txt). Kept here: questions.log as questions.txt, each
# out/probe.json as layers_translate.json, layers_roll.json, layers_translate_bn_shift.json,
# worst_case_toy_cnn.json, worst_case_toy_strided.json, pad224/padding_report.md as
# padding_report_224.md (the figures are in docs/figures).
set -eu
jaxeq probe --questions --size 48 > questions.log
J="jaxeq probe --model resnet18 --variants same:zeros full:zeros same:circular --size 128 --max-shift 32 --step 16 --margin 36 --chunk 5"
$J --action translate --out l_translate
$J --action roll --out l_roll
$J --action translate --bn-shift 0.1 --out l_bn
W="--variants same:zeros full:zeros same:circular --size 32 --max-shift 0 --action roll --batch 16 --worst-case --worst-case-shift 15"
jaxeq probe --model toy_cnn $W --out wc_cnn
jaxeq probe --model toy_strided $W --out wc_strided
jaxeq probe --padding-report resnet18 --variants same:zeros full:zeros same:circular --size 224 --size-range 224 255 --out pad224
