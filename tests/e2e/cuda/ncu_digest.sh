#!/usr/bin/env bash
# scripts/ncu_digest.py, which turns gpu_check.sh's Nsight Compute logs into the per-kernel table
# of summary.txt, on logs written here in ncu's two CSV layouts (no GPU needed): the figures
# against hand-computed ones, and every log it cannot read refused with the file and line.
set -uo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
: "${LD_SRC:?}" "${LD_PYTHON:?}"
D=("$LD_PYTHON" "$LD_SRC/scripts/ncu_digest.py")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
H='"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size",'
H+='"Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"'
row() { # ID KERNEL METRIC UNIT VALUE: one row of the details layout
  echo "\"$1\",\"77\",\"layerdiff\",\"gpu0\",\"$2\",\"1\",\"13\",\"(256, 1, 1)\",\"(64, 1, 1)\",\"0\",\"9.0\",\"Command line profiler metrics\",\"$3\",\"$4\",\"$5\""
}
G='void decode_gemv_kernel<4, true>(const unsigned short *, const unsigned short *, unsigned long)'
X=sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_kernel
A='argmax_merge_kernel(const ld_cuda_argmax_part *, unsigned long, int *)'
T=gpu__time_duration.sum
# The application's output and ncu's own lines around the CSV, as in gpu_check's ncu.log.
{
  echo "==PROF== Connected to process 77 (/x/layerdiff)"
  echo "==PROF== Profiling \"decode_gemv_kernel\" - 0: 0%....50%....100% - 1 pass"
  echo "41,41,41"
  echo "$H"
  row 0 "$G" "$T" nsecond "1,500"
  row 0 "$G" sm__throughput.avg.pct_of_peak_sustained_elapsed % "93.5"
  row 1 "$X" "$T" msecond "0.0025"
  row 2 "$G" "$T" nsecond "2,500"
  row 3 "$A" "$T" usecond "1.5"
  echo "==PROF== Disconnected from process 77"
} >"$tmp/details.csv"
# 8.0 us in all: gemv 1.5 + 2.5 ns-thousands, the GEMM 2.5 (0.0025 ms), the argmax 1.5.
want="kernel time: 4 launches of 3 kernels, 8.0 us in all, 4.0 us per step (2 steps, 2 launches each)
kernel                                                       launches   avg us  total us  share
decode_gemv_kernel<4, true>                                         2     2.00       4.0  50.0%
sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x...        1     2.50       2.5  31.2%
argmax_merge_kernel                                                 1     1.50       1.5  18.8%"
got=$("${D[@]}" "$tmp/details.csv" --steps 2 2>&1)
check_rc "details layout: the table as computed by hand" 0 \
  "$([[ $got == "$want" ]]; echo $?)"
[[ $got == "$want" ]] || diff <(echo "$want") <(echo "$got") | sed 's/^/    /'
check "--top 1: the rest in one line" 0 "... 2 more kernels, 2 launches, 4.0 us" \
  "${D[@]}" "$tmp/details.csv" --top 1
{
  echo '"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","gpu__time_duration.sum"'
  echo '"","","","","","","","usecond"'
  echo "\"0\",\"77\",\"layerdiff\",\"gpu0\",\"embed_kernel(const unsigned short *)\",\"1\",\"13\",\"2.25\""
  echo "\"1\",\"77\",\"layerdiff\",\"gpu0\",\"embed_kernel(const unsigned short *)\",\"1\",\"13\",\"1,001.75\""
} >"$tmp/raw.csv"
check "raw layout (a column per metric, a row of units)" 0 \
  "kernel time: 2 launches of 1 kernel, 1004.0 us in all" "${D[@]}" "$tmp/raw.csv"
check "  ... the kernel's average" 0 "embed_kernel                                                        2   502.00" \
  "${D[@]}" "$tmp/raw.csv"

printf '==PROF== Connected to process 77\n==WARNING== No kernels were profiled.\n' >"$tmp/none.csv"
check "nothing profiled: exit 1" 1 "$tmp/none.csv holds no launch's gpu__time_duration.sum" \
  "${D[@]}" "$tmp/none.csv"
{ echo "$H"; row 0 "$G" "$T" byte "12"; } >"$tmp/unit.csv"
check "a duration in bytes: exit 1, file and line" 1 \
  "$tmp/unit.csv:2: unit 'byte' of gpu__time_duration.sum is not a unit of time" \
  "${D[@]}" "$tmp/unit.csv"
{ echo "$H"; row 0 "$G" "$T" nsecond "n/a"; } >"$tmp/nan.csv"
check "a duration that is not a number: exit 1" 1 "$tmp/nan.csv:2: 'n/a' is not a number" \
  "${D[@]}" "$tmp/nan.csv"
{ echo "$H"; row 0 "$G" "$T" nsecond "-5"; } >"$tmp/neg.csv"
check "a negative duration: exit 1" 1 "$tmp/neg.csv:2: duration '-5' is negative" \
  "${D[@]}" "$tmp/neg.csv"
{ echo "$H"; echo '"0","77","cut short'; } >"$tmp/short.csv"
check "a row cut short: exit 1" 1 "$tmp/short.csv:2: 3 fields under a header of 15" \
  "${D[@]}" "$tmp/short.csv"
echo '"ID","Process ID","Metric Value"' >"$tmp/nokernel.csv"
check "a header without kernel names: exit 1" 1 "without a 'Kernel Name' column" \
  "${D[@]}" "$tmp/nokernel.csv"
check "a log that is not there: exit 2" 2 "cannot read $tmp/absent.csv" \
  "${D[@]}" "$tmp/absent.csv"
check "bad usage: exit 2" 2 "--steps must be >= 0" "${D[@]}" "$tmp/raw.csv" --steps -1
exit $((fails > 0))
