/* wb_attention.cu - attention forward on NVIDIA GPUs (sm_80 and newer):
 * softmax(scale q k^T, causal) v (Vaswani et al., 2017, eq. 1) in fp16/bf16
 * with fp32 accumulation. The contract is in wb_attention_cuda.h; the
 * readable versions are engines/attention/reference.py (naive) and
 * engines/attention/tiled.py (flash's loop in NumPy).
 *
 * Built by engines/cudalib.py: nvcc -I native/include, together with
 * native/src/wb_status.c, so argument errors share the CPU's codes and
 * messages.
 *
 * naive: three launches that write the whole lq x lk score matrix in fp32 to
 *        a workspace, softmax it row by row, then multiply by v, all on the
 *        ordinary cores. Memory grows with lq * lk.
 * flash: FlashAttention-2's forward (Dao, 2023, Algorithm 1). A block of
 *        16 * WARPS queries stays in registers while the keys stream past in
 *        tiles of BLOCK_N; each warp owns 16 query rows, so the online softmax
 *        needs no shared memory:
 *            m' = max(m, rowmax(S)),  P = exp(S - m'),
 *            l' = l e^(m - m') + rowsum(P),  O' = O e^(m - m') + P V,
 *        and O / l is written at the end. S = Q K^T and P V run on the tensor
 *        cores (mma.sync m16n8k16, fp32 accumulators); P goes from the S
 *        accumulators into the next A operand without touching memory,
 *        because the m16n8 accumulator layout of two adjacent tiles is the
 *        m16k16 A-operand layout. K and V tiles arrive by cp.async, two
 *        stages deep, into shared memory swizzled so that ldmatrix reads
 *        without bank conflicts. Exponentials are base 2 with log2(e) folded
 *        into the scale.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "wb_attention_cuda.h"
}
#include "wb_checked.h"

#define LOG2E 1.4426950408889634f

/* ---- small device helpers ------------------------------------------------ */

template <typename T> struct pack2;
template <> struct pack2<__half> {
    static __device__ __forceinline__ uint32_t from(float lo, float hi)
    {
        __half2 h = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};
template <> struct pack2<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t from(float lo, float hi)
    {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};

/* D = A B + D for one 16x8x16 tile; A row-major, B column-major (PTX ISA,
 * "Matrix Fragments for mma.m16n8k16"). */
template <typename T> __device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__half>(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t smem_addr(const void *p)
{
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* 16 bytes global -> shared, bypassing L1; src_bytes 0 writes zeros instead. */
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void *src, int src_bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::);
}

template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* Element (row, col) of a [rows][D] tile of 2-byte values, with the 16-byte
 * chunk index XORed by row % 8: the eight rows an ldmatrix reads at one
 * logical chunk then fall in eight different bank groups. */
template <int D> __device__ __forceinline__ int swizzle(int row, int col)
{
    return row * D + ((((col >> 3) ^ row) & 7) | ((col >> 3) & ~7)) * 8 + (col & 7);
}

/* Copy rows [row0, row0 + ROWS) of a [len][D] matrix into a swizzled tile,
 * zero-filling rows at or past len. */
template <typename T, int ROWS, int D, int THREADS>
__device__ __forceinline__ void load_tile(T *tile, const T *src, int64_t row0, int64_t len, int tid)
{
    constexpr int CHUNKS = D / 8; /* 16-byte chunks per row */
#pragma unroll
    for (int c = tid; c < ROWS * CHUNKS; c += THREADS) {
        int row = c / CHUNKS, col = (c % CHUNKS) * 8;
        bool inside = row0 + row < len;
        const T *from = inside ? src + (row0 + row) * D + col : src;
        cp_async_16(smem_addr(tile + swizzle<D>(row, col)), from, inside ? 16 : 0);
    }
}

/* ---- flash --------------------------------------------------------------- */

/* A operand of Q's rows warp*16.. at k-step kk: lanes 0-15 address rows 0-15
 * at k 0, lanes 16-31 the same rows at k 8. */
template <typename T, int D>
__device__ __forceinline__ void load_q_fragment(uint32_t a[4], const T *sq, int warp, int lane, int kk)
{
    ldmatrix_x4(a, smem_addr(sq + swizzle<D>(warp * 16 + lane % 16, kk * 16 + (lane / 16) * 8)));
}

constexpr int BLOCK_N = 64;

template <int D, int WARPS> constexpr int flash_smem_bytes()
{
    return (16 * WARPS * D + 4 * BLOCK_N * D) * 2; /* Q, then K and V twice */
}

template <typename T, int D, int WARPS>
__global__ void __launch_bounds__(WARPS * 32, 1)
flash_forward(T *__restrict__ out, const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v,
              int heads, int group, int lq, int lk, float scale_log2, int causal)
{
    constexpr int BLOCK_M = 16 * WARPS, THREADS = WARPS * 32;
    constexpr int KSTEPS = D / 16;    /* k-steps of Q K^T over the head dim */
    constexpr int NTILES = BLOCK_N / 8; /* 8-key column tiles of S */
    constexpr int DTILES = D / 8;     /* 8-wide column tiles of O */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *sq = reinterpret_cast<T *>(smem_raw);
    T *sk = sq + BLOCK_M * D;      /* [2][BLOCK_N][D] */
    T *sv = sk + 2 * BLOCK_N * D;  /* [2][BLOCK_N][D] */

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, tig = lane % 4; /* mma fragment row group and column pair */
    /* The last query blocks have the most keys under a causal mask: start them first. */
    const int mblock = gridDim.x - 1 - blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z;
    const int64_t shift = (int64_t)lk - lq; /* query i sits at position i + shift */
    const int64_t m0 = (int64_t)mblock * BLOCK_M;

    const T *qh = q + ((int64_t)b * heads + h) * lq * D;
    const T *kh = k + ((int64_t)b * (heads / group) + h / group) * lk * D;
    const T *vh = v + ((int64_t)b * (heads / group) + h / group) * lk * D;
    T *oh = out + ((int64_t)b * heads + h) * lq * D;

    int64_t key_end = lk;
    if (causal) {
        int64_t last = m0 + BLOCK_M - 1 + shift; /* position of the block's last query */
        key_end = last + 1 < key_end ? last + 1 : key_end;
    }
    const int nblocks = key_end > 0 ? (int)((key_end + BLOCK_N - 1) / BLOCK_N) : 0;

    const int row_a = warp * 16 + g, row_b = row_a + 8; /* this thread's two rows in the block */
    float o[DTILES][4];
#pragma unroll
    for (int t = 0; t < DTILES; t++)
        o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
    /* Q's A operands: all of them for the tile loop when they fit beside O,
     * else one k-step at a time from shared memory (d 128 would spill). */
    constexpr bool Q_IN_REGS = D <= 64;
    uint32_t qf[KSTEPS][4];

    if (nblocks > 0) {
        load_tile<T, BLOCK_M, D, THREADS>(sq, qh, m0, lq, tid);
        load_tile<T, BLOCK_N, D, THREADS>(sk, kh, 0, lk, tid);
        load_tile<T, BLOCK_N, D, THREADS>(sv, vh, 0, lk, tid);
        cp_async_commit();
    }
    for (int j = 0; j < nblocks; j++) {
        const int stage = j & 1;
        if (j + 1 < nblocks) {
            load_tile<T, BLOCK_N, D, THREADS>(sk + (stage ^ 1) * BLOCK_N * D, kh, (int64_t)(j + 1) * BLOCK_N, lk, tid);
            load_tile<T, BLOCK_N, D, THREADS>(sv + (stage ^ 1) * BLOCK_N * D, vh, (int64_t)(j + 1) * BLOCK_N, lk, tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (Q_IN_REGS && j == 0) {
#pragma unroll
            for (int kk = 0; kk < KSTEPS; kk++)
                load_q_fragment<T, D>(qf[kk], sq, warp, lane, kk);
        }
        const T *tk = sk + stage * BLOCK_N * D, *tv = sv + stage * BLOCK_N * D;

        /* S = Q K^T for this warp's 16 rows and the tile's 64 keys. K is [key][d],
         * which is the column-major B operand: lanes 0-7 and 8-15 give keys 0-7 at
         * k 0 and 8, lanes 16-31 keys 8-15. */
        float s[NTILES][4];
#pragma unroll
        for (int n = 0; n < NTILES; n++)
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KSTEPS; kk++) {
            if (!Q_IN_REGS)
                load_q_fragment<T, D>(qf[kk], sq, warp, lane, kk);
#pragma unroll
            for (int np = 0; np < NTILES / 2; np++) {
                uint32_t bk[4];
                int key = np * 16 + (lane / 16) * 8 + lane % 8;
                ldmatrix_x4(bk, smem_addr(tk + swizzle<D>(key, kk * 16 + ((lane / 8) % 2) * 8)));
                mma16816<T>(s[2 * np], qf[kk], bk[0], bk[1]);
                mma16816<T>(s[2 * np + 1], qf[kk], bk[2], bk[3]);
            }
        }

        /* Scale into log2 units and mask keys past the end or in the future. */
        const int64_t n0 = (int64_t)j * BLOCK_N;
        const bool edge = n0 + BLOCK_N > lk || (causal && n0 + BLOCK_N - 1 > m0 + shift);
#pragma unroll
        for (int n = 0; n < NTILES; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[n][e] * scale_log2;
                if (edge) {
                    int64_t key = n0 + n * 8 + 2 * tig + (e & 1);
                    int64_t pos = m0 + (e < 2 ? row_a : row_b) + shift;
                    if (key >= lk || (causal && key > pos))
                        x = -INFINITY;
                }
                s[n][e] = x;
            }
        }

        /* Online softmax: each row's four threads (one quad) share its max. */
        float mx_a = m_a, mx_b = m_b;
#pragma unroll
        for (int n = 0; n < NTILES; n++) {
            mx_a = fmaxf(mx_a, fmaxf(s[n][0], s[n][1]));
            mx_b = fmaxf(mx_b, fmaxf(s[n][2], s[n][3]));
        }
#pragma unroll
        for (int off = 1; off < 4; off *= 2) {
            mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, off));
            mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, off));
        }
        /* A row that has seen only masked keys keeps weight 0 everywhere. */
        const float base_a = mx_a == -INFINITY ? 0.0f : mx_a, base_b = mx_b == -INFINITY ? 0.0f : mx_b;
        const float alpha_a = fast_exp2(m_a - base_a), alpha_b = fast_exp2(m_b - base_b);
        m_a = mx_a;
        m_b = mx_b;
        float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
        for (int n = 0; n < NTILES; n++) {
            s[n][0] = fast_exp2(s[n][0] - base_a);
            s[n][1] = fast_exp2(s[n][1] - base_a);
            s[n][2] = fast_exp2(s[n][2] - base_b);
            s[n][3] = fast_exp2(s[n][3] - base_b);
            sum_a += s[n][0] + s[n][1];
            sum_b += s[n][2] + s[n][3];
        }
        /* Each thread keeps a partial row sum; the quad adds them up at the end. */
        l_a = l_a * alpha_a + sum_a;
        l_b = l_b * alpha_b + sum_b;
#pragma unroll
        for (int t = 0; t < DTILES; t++) {
            o[t][0] *= alpha_a;
            o[t][1] *= alpha_a;
            o[t][2] *= alpha_b;
            o[t][3] *= alpha_b;
        }

        /* O += P V. P's A operand for keys 16kk..16kk+15 is S tiles 2kk and 2kk+1;
         * V is [key][d], the row-major B operand, read transposed: lanes 0-7 and
         * 8-15 give keys 0-7 and 8-15 at d 0, lanes 16-31 the same keys at d 8. */
#pragma unroll
        for (int kk = 0; kk < BLOCK_N / 16; kk++) {
            uint32_t pa[4] = {
                pack2<T>::from(s[2 * kk][0], s[2 * kk][1]),
                pack2<T>::from(s[2 * kk][2], s[2 * kk][3]),
                pack2<T>::from(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                pack2<T>::from(s[2 * kk + 1][2], s[2 * kk + 1][3]),
            };
#pragma unroll
            for (int dp = 0; dp < DTILES / 2; dp++) {
                uint32_t bv[4];
                int key = kk * 16 + lane % 8 + ((lane / 8) % 2) * 8;
                ldmatrix_x4_trans(bv, smem_addr(tv + swizzle<D>(key, dp * 16 + (lane / 16) * 8)));
                mma16816<T>(o[2 * dp], pa, bv[0], bv[1]);
                mma16816<T>(o[2 * dp + 1], pa, bv[2], bv[3]);
            }
        }
        __syncthreads(); /* this stage is loaded again two tiles on */
    }

    /* O / l, staged through this warp's own rows of the Q tile so that the
     * global stores are whole 16-byte chunks. */
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
    const float inv_a = l_a > 0.0f ? 1.0f / l_a : 0.0f, inv_b = l_b > 0.0f ? 1.0f / l_b : 0.0f;
#pragma unroll
    for (int t = 0; t < DTILES; t++) {
        int col = t * 8 + 2 * tig;
        *reinterpret_cast<uint32_t *>(sq + swizzle<D>(row_a, col)) = pack2<T>::from(o[t][0] * inv_a, o[t][1] * inv_a);
        *reinterpret_cast<uint32_t *>(sq + swizzle<D>(row_b, col)) = pack2<T>::from(o[t][2] * inv_b, o[t][3] * inv_b);
    }
    __syncwarp();
    constexpr int CHUNKS = D / 8;
#pragma unroll
    for (int c = lane; c < 16 * CHUNKS; c += 32) {
        int row = warp * 16 + c / CHUNKS, col = (c % CHUNKS) * 8;
        if (m0 + row < lq)
            *reinterpret_cast<uint4 *>(oh + (m0 + row) * D + col) = *reinterpret_cast<const uint4 *>(sq + swizzle<D>(row, col));
    }
}

/* ---- naive --------------------------------------------------------------- */

constexpr int TILE = 16;

template <typename T> __device__ __forceinline__ float to_float(T x);
template <> __device__ __forceinline__ float to_float<__half>(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/* scores[bh][i][j] = scale q_i . k_j, or -inf where the causal mask hides j,
 * a TILE x TILE block of scores per thread block. */
template <typename T>
__global__ void naive_scores(float *scores, const T *q, const T *k, int heads, int group, int lq, int lk, int d,
                             float scale, int causal)
{
    __shared__ float tq[TILE][TILE + 1], tk[TILE][TILE + 1];
    const int bh = blockIdx.z, b = bh / heads, h = bh % heads;
    const int i = blockIdx.y * TILE + threadIdx.y, j = blockIdx.x * TILE + threadIdx.x;
    const T *qh = q + (int64_t)bh * lq * d;
    const T *kh = k + ((int64_t)b * (heads / group) + h / group) * lk * d;
    float acc = 0.0f;
    for (int t0 = 0; t0 < d; t0 += TILE) {
        int qi = blockIdx.y * TILE + threadIdx.y, kj = blockIdx.x * TILE + threadIdx.y, t = t0 + threadIdx.x;
        tq[threadIdx.y][threadIdx.x] = qi < lq && t < d ? to_float(qh[(int64_t)qi * d + t]) : 0.0f;
        tk[threadIdx.y][threadIdx.x] = kj < lk && t < d ? to_float(kh[(int64_t)kj * d + t]) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int u = 0; u < TILE; u++)
            acc += tq[threadIdx.y][u] * tk[threadIdx.x][u];
        __syncthreads();
    }
    if (i < lq && j < lk) {
        bool hidden = causal && (int64_t)j > (int64_t)i + lk - lq;
        scores[((int64_t)bh * lq + i) * lk + j] = hidden ? -INFINITY : acc * scale;
    }
}

/* Each row of scores becomes its softmax in place; one thread block per row. */
__global__ void naive_softmax(float *scores, int lk)
{
    __shared__ float partial[32];
    float *row = scores + (int64_t)blockIdx.x * lk;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, warps = blockDim.x / 32;
    float mx = -INFINITY;
    for (int j = tid; j < lk; j += blockDim.x)
        mx = fmaxf(mx, row[j]);
    for (int off = 16; off > 0; off /= 2)
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    if (lane == 0)
        partial[warp] = mx;
    __syncthreads();
    mx = -INFINITY;
    for (int w = 0; w < warps; w++)
        mx = fmaxf(mx, partial[w]);
    __syncthreads();
    float sum = 0.0f;
    for (int j = tid; j < lk; j += blockDim.x) {
        float e = mx == -INFINITY ? 0.0f : expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    for (int off = 16; off > 0; off /= 2)
        sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0)
        partial[warp] = sum;
    __syncthreads();
    sum = 0.0f;
    for (int w = 0; w < warps; w++)
        sum += partial[w];
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int j = tid; j < lk; j += blockDim.x)
        row[j] *= inv;
}

/* out[bh][i][t] = sum_j p[bh][i][j] v_j[t], a TILE x TILE block of outputs per thread block. */
template <typename T>
__global__ void naive_weighted_values(T *out, const float *p, const T *v, int heads, int group, int lq, int lk, int d)
{
    __shared__ float tp[TILE][TILE + 1], tv[TILE][TILE + 1];
    const int bh = blockIdx.z, b = bh / heads, h = bh % heads;
    const int i = blockIdx.y * TILE + threadIdx.y, t = blockIdx.x * TILE + threadIdx.x;
    const float *ph = p + (int64_t)bh * lq * lk;
    const T *vh = v + ((int64_t)b * (heads / group) + h / group) * lk * d;
    float acc = 0.0f;
    for (int j0 = 0; j0 < lk; j0 += TILE) {
        int pj = j0 + threadIdx.x, vj = j0 + threadIdx.y;
        tp[threadIdx.y][threadIdx.x] = i < lq && pj < lk ? ph[(int64_t)i * lk + pj] : 0.0f;
        tv[threadIdx.y][threadIdx.x] = vj < lk && t < d ? to_float(vh[(int64_t)vj * d + t]) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int u = 0; u < TILE; u++)
            acc += tp[threadIdx.y][u] * tv[u][threadIdx.x];
        __syncthreads();
    }
    if (i < lq && t < d)
        out[(int64_t)bh * lq * d + (int64_t)i * d + t] = from_float<T>(acc);
}

/* ---- host side ----------------------------------------------------------- */

static int cuda_status(cudaError_t err)
{
    return err == cudaSuccess ? 0 : WB_CUDA_ERROR_BASE - (int)err;
}

template <typename T, int D, int WARPS>
static cudaError_t launch_flash(void *out, const void *q, const void *k, const void *v, int batch, int heads,
                                int group, int lq, int lk, float scale, int causal, cudaStream_t stream)
{
    constexpr int smem = flash_smem_bytes<D, WARPS>();
    auto kernel = flash_forward<T, D, WARPS>;
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess)
        return err;
    dim3 grid((lq + 16 * WARPS - 1) / (16 * WARPS), heads, batch);
    kernel<<<grid, WARPS * 32, smem, stream>>>(static_cast<T *>(out), static_cast<const T *>(q),
                                               static_cast<const T *>(k), static_cast<const T *>(v), heads, group,
                                               lq, lk, scale * LOG2E, causal);
    return cudaGetLastError();
}

template <typename T>
static cudaError_t launch_naive(void *out, const void *q, const void *k, const void *v, int batch, int heads,
                                int group, int lq, int lk, int d, float scale, int causal, float *scores,
                                cudaStream_t stream)
{
    dim3 block(TILE, TILE);
    naive_scores<T><<<dim3((lk + TILE - 1) / TILE, (lq + TILE - 1) / TILE, batch * heads), block, 0, stream>>>(
        scores, static_cast<const T *>(q), static_cast<const T *>(k), heads, group, lq, lk, d, scale, causal);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        return err;
    naive_softmax<<<batch * heads * lq, 256, 0, stream>>>(scores, lk);
    if ((err = cudaGetLastError()) != cudaSuccess)
        return err;
    naive_weighted_values<T><<<dim3((d + TILE - 1) / TILE, (lq + TILE - 1) / TILE, batch * heads), block, 0, stream>>>(
        static_cast<T *>(out), scores, static_cast<const T *>(v), heads, group, lq, lk, d);
    return cudaGetLastError();
}

/* 8 warps (128 queries) per block: each K/V tile in shared memory then feeds
 * twice the rows it would with 4, halving the traffic from L2. */
constexpr int FLASH_WARPS = 8;

template <typename T>
static cudaError_t dispatch(int kernel, void *out, const void *q, const void *k, const void *v, int batch, int heads,
                            int group, int lq, int lk, int d, float scale, int causal, float *scores,
                            cudaStream_t stream)
{
    if (kernel == WB_ATTN_NAIVE)
        return launch_naive<T>(out, q, k, v, batch, heads, group, lq, lk, d, scale, causal, scores, stream);
    if (d == 64)
        return launch_flash<T, 64, FLASH_WARPS>(out, q, k, v, batch, heads, group, lq, lk, scale, causal, stream);
    return launch_flash<T, 128, FLASH_WARPS>(out, q, k, v, batch, heads, group, lq, lk, scale, causal, stream);
}

extern "C" int wb_cuda_device_count(int *count)
{
    if (!count)
        return WB_ERR_NULL_POINTER;
    *count = 0;
    return cuda_status(cudaGetDeviceCount(count));
}

/* CUDA runtime errors by the runtime's own words; every other code by
 * wb_status.c's table, the one the CPU library reads. */
extern "C" const char *wb_cuda_status_message(int status)
{
    if (status <= WB_CUDA_ERROR_BASE)
        return cudaGetErrorString(static_cast<cudaError_t>(WB_CUDA_ERROR_BASE - status));
    return wb_status_message(status);
}

extern "C" int64_t wb_attention_workspace_cuda(int kernel, int64_t batch, int64_t heads, int64_t lq, int64_t lk)
{
    if (batch < 0 || heads < 1 || lq < 0 || lk < 0)
        return WB_ERR_BAD_SIZE;
    if (kernel == WB_ATTN_FLASH)
        return 0;
    if (kernel != WB_ATTN_NAIVE)
        return WB_ERR_BAD_ARGUMENT;
    int64_t scores, bytes;
    if (wb_mul4_overflows(batch, heads, lq, lk, &scores) ||
        wb_mul_overflows(scores, (int64_t)sizeof(float), &bytes))
        return WB_ERR_TOO_LARGE;
    return bytes;
}

/* Checks the arguments, then runs the kernel for element type T. */
template <typename T>
static int forward(void *out, const void *q, const void *k, const void *v, int64_t batch, int64_t heads,
                   int64_t kv_heads, int64_t lq, int64_t lk, int64_t d, float scale, int causal, int kernel,
                   void *workspace, int64_t workspace_bytes, int device, void *stream)
{
    if (!out || !q || !k || !v)
        return WB_ERR_NULL_POINTER;
    if (batch < 0 || heads < 1 || kv_heads < 1 || lq < 0 || lk < 0 || d < 1)
        return WB_ERR_BAD_SIZE;
    /* Grid dimensions y and z stop at 65535; positions are int inside the kernels. */
    if (heads > 65535 || batch > 65535 || batch * heads > 65535 || lq > INT32_MAX || lk > INT32_MAX)
        return WB_ERR_BAD_SIZE;
    if (heads % kv_heads != 0)
        return WB_ERR_BAD_ARGUMENT;
    if (kernel == WB_ATTN_FLASH ? (d != 64 && d != 128) : kernel != WB_ATTN_NAIVE)
        return WB_ERR_BAD_ARGUMENT;
    if (kernel == WB_ATTN_NAIVE) {
        if (!workspace)
            return WB_ERR_NULL_POINTER;
        int64_t needed = wb_attention_workspace_cuda(kernel, batch, heads, lq, lk);
        if (needed < 0)
            return (int)needed;
        if (workspace_bytes < needed)
            return WB_ERR_OUTPUT_FULL;
    }
    int64_t out_elements;
    if (wb_mul4_overflows(batch, heads, lq, d, &out_elements))
        return WB_ERR_TOO_LARGE;
    if (batch == 0 || lq == 0)
        return WB_OK;
    /* The device is the caller's thread state: switch for this call only. */
    int previous = 0;
    int status = cuda_status(cudaGetDevice(&previous));
    if (status != WB_OK)
        return status;
    status = cuda_status(cudaSetDevice(device));
    if (status != WB_OK)
        return status;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (lk == 0) { /* no keys: every query sees nothing */
        status = cuda_status(cudaMemsetAsync(out, 0, (size_t)out_elements * sizeof(T), s));
    } else {
        int group = (int)(heads / kv_heads);
        status = cuda_status(dispatch<T>(kernel, out, q, k, v, (int)batch, (int)heads, group, (int)lq, (int)lk,
                                         (int)d, scale, causal, static_cast<float *>(workspace), s));
    }
    int restored = cuda_status(cudaSetDevice(previous));
    return status != WB_OK ? status : restored;
}

extern "C" int wb_attention_forward_cuda_f16(void *out, const void *q, const void *k, const void *v, int64_t batch,
                                             int64_t heads, int64_t kv_heads, int64_t lq, int64_t lk, int64_t d,
                                             float scale, int causal, int kernel, void *workspace,
                                             int64_t workspace_bytes, int device, void *stream)
{
    return forward<__half>(out, q, k, v, batch, heads, kv_heads, lq, lk, d, scale, causal, kernel, workspace,
                           workspace_bytes, device, stream);
}

extern "C" int wb_attention_forward_cuda_bf16(void *out, const void *q, const void *k, const void *v, int64_t batch,
                                              int64_t heads, int64_t kv_heads, int64_t lq, int64_t lk, int64_t d,
                                              float scale, int causal, int kernel, void *workspace,
                                              int64_t workspace_bytes, int device, void *stream)
{
    return forward<__nv_bfloat16>(out, q, k, v, batch, heads, kv_heads, lq, lk, d, scale, causal, kernel,
                                  workspace, workspace_bytes, device, stream);
}
