// Development harness for Kernels/attention_sm90.cu on the GPU machine (nvcc there, no .NET needed): checks the kernel
// against a float32 reference over awkward sizes and the CogVideoX-2b and 1.5 shapes (the block's layout: V a view of
// the QKV projection, O a view of the merged heads), then times it at those two shapes. The backend compiles the same source with
// NVRTC; this only shortens the edit-measure loop. Build: see attention_sm90_check.sh.
#include <cuda.h>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <vector>

#include "../../src/CogVideoX.Engine.Cuda/Kernels/common.cuh"
#include "../../src/CogVideoX.Engine.Cuda/Kernels/attention_sm90.cu"

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); exit(1); } } while (0)

static u16 h_f16(float f) { u16 h; __half hh = __float2half_rn(f); memcpy(&h, &hh, 2); return h; }

// One thread per checked (b*h, row): float32 softmax over all keys.
__global__ void reference(AttentionArgs a, const int* rows, int nrows, float* out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int bh = blockIdx.y;
    if (i >= nrows) return;
    int b = bh / a.heads, h = bh % a.heads, row = rows[i];
    const u16* q = (const u16*)a.q + b * a.qs[0] + h * a.qs[1] + (i64)row * a.qs[2];
    const u16* k = (const u16*)a.k + b * a.ks[0] + h * a.ks[1];
    const u16* v = (const u16*)a.v + b * a.vs[0] + h * a.vs[1];
    float qf[64], acc[64];
    for (int d = 0; d < 64; ++d) { qf[d] = f16_to_float(q[d]); acc[d] = 0; }
    float m = -INFINITY, l = 0;
    for (int j = 0; j < a.nk; ++j)
    {
        const u16* kr = k + (i64)j * a.ks[2];
        float s = 0;
        for (int d = 0; d < 64; ++d) s += qf[d] * f16_to_float(kr[d]);
        s *= a.scale;
        float nm = fmaxf(m, s), c = expf(m - nm), p = expf(s - nm);
        l = l * c + p;
        const u16* vr = v + (i64)j * a.vs[2];
        for (int d = 0; d < 64; ++d) acc[d] = acc[d] * c + p * f16_to_float(vr[d]);
        m = nm;
    }
    float* o = out + ((i64)bh * nrows + i) * 64;
    for (int d = 0; d < 64; ++d) o[d] = acc[d] / l;
}

// The map the backend builds: (head dim, rows, heads, batch), strides from the [B, H, N, D] view's element strides.
static TensorMap make_map(const void* base, int rows, int heads, int batch, const i64* st)
{
    TensorMap m;
    cuuint64_t dims[4] = {64, (cuuint64_t)rows, (cuuint64_t)heads, (cuuint64_t)batch};
    cuuint64_t strides[3] = {(cuuint64_t)st[2] * 2, (cuuint64_t)st[1] * 2, (cuuint64_t)st[0] * 2};
    cuuint32_t box[4] = {64, 64, 1, 1}, es[4] = {1, 1, 1, 1};
    CUresult r = cuTensorMapEncodeTiled((CUtensorMap*)&m, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4, (void*)base, dims, strides, box, es,
        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) { printf("cuTensorMapEncodeTiled failed: %d\n", (int)r); exit(1); }
    return m;
}

struct Case { int b, h, nq, nk; bool block_layout; int sample; };

static double run_case(const Case& c, bool timed)
{
    const int D = 64;
    size_t nqe = (size_t)c.b * c.h * c.nq * D, nke = (size_t)c.b * c.h * c.nk * D;
    size_t nve = c.block_layout ? (size_t)c.b * c.nk * 3 * c.h * D : nke;
    std::vector<u16> hq(nqe), hk(nke), hv(nve);
    srand(1234);
    auto rnd = [] { return (float)rand() / RAND_MAX * 4.0f - 2.0f; };
    for (auto& x : hq) x = h_f16(2.0f * rnd());  // sharper rows than uniform keys give
    for (auto& x : hk) x = h_f16(rnd());
    for (auto& x : hv) x = h_f16(rnd());
    u16 *q, *k, *v, *y;
    CHECK(cudaMalloc(&q, nqe * 2)); CHECK(cudaMalloc(&k, nke * 2)); CHECK(cudaMalloc(&v, nve * 2)); CHECK(cudaMalloc(&y, nqe * 2));
    CHECK(cudaMemcpy(q, hq.data(), nqe * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(k, hk.data(), nke * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(v, hv.data(), nve * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(y, 0xff, nqe * 2));
    AttentionArgs a{};
    a.q = q; a.k = k; a.y = y; a.heads = c.h; a.nq = c.nq; a.nk = c.nk; a.d = D; a.scale = 0.125f;
    i64 qs[4] = {(i64)c.h * c.nq * D, (i64)c.nq * D, D, 1};
    i64 ks[4] = {(i64)c.h * c.nk * D, (i64)c.nk * D, D, 1};
    memcpy(a.qs, qs, sizeof qs); memcpy(a.ks, ks, sizeof ks);
    if (c.block_layout)
    {
        // V: slice 2 of [B, S, 3, H, D]; Y: [B, S, H, D] seen as [B, H, S, D].
        a.v = v + 2 * c.h * D;
        i64 vs[4] = {(i64)c.nk * 3 * c.h * D, D, 3LL * c.h * D, 1};
        i64 ys[4] = {(i64)c.nq * c.h * D, D, (i64)c.h * D, 1};
        memcpy(a.vs, vs, sizeof vs); memcpy(a.ys, ys, sizeof ys);
    }
    else
    {
        a.v = v;
        memcpy(a.vs, ks, sizeof ks); memcpy(a.ys, qs, sizeof qs);
    }
    TmaAttentionArgs ta;
    ta.q = make_map(a.q, c.nq, c.h, c.b, a.qs);
    ta.k = make_map(a.k, c.nk, c.h, c.b, a.ks);
    ta.v = make_map(a.v, c.nk, c.h, c.b, a.vs);
    ta.a = a;
    auto kernel = flash_attention_sm90_f16_d64;
    auto launch = [&](dim3 g) { kernel<<<g, ATTN_THREADS, ATTN_SM90_SMEM>>>(ta); };
    CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, ATTN_SM90_SMEM));
    dim3 grid((c.nq + 64 * ATTN_NW - 1) / (64 * ATTN_NW), c.b * c.h);
    launch(grid);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());

    // Reference on a sample of rows (every row when sample == 1), always including the last.
    std::vector<int> rows;
    for (int r = 0; r < c.nq; r += c.sample) rows.push_back(r);
    if (rows.back() != c.nq - 1) rows.push_back(c.nq - 1);
    int* drows; float* ref;
    CHECK(cudaMalloc(&drows, rows.size() * 4));
    CHECK(cudaMemcpy(drows, rows.data(), rows.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMalloc(&ref, (size_t)c.b * c.h * rows.size() * 64 * 4));
    reference<<<dim3((rows.size() + 127) / 128, c.b * c.h), 128>>>(a, drows, (int)rows.size(), ref);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    std::vector<float> href((size_t)c.b * c.h * rows.size() * 64);
    std::vector<u16> hy(nqe);
    CHECK(cudaMemcpy(href.data(), ref, href.size() * 4, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hy.data(), y, nqe * 2, cudaMemcpyDeviceToHost));
    double maxerr = 0, maxref = 0, sumerr = 0;
    size_t n = 0;
    for (int bh = 0; bh < c.b * c.h; ++bh)
        for (size_t i = 0; i < rows.size(); ++i)
            for (int d = 0; d < 64; ++d)
            {
                int b = bh / c.h, h = bh % c.h, row = rows[i];
                i64 off = b * a.ys[0] + h * a.ys[1] + (i64)row * a.ys[2] + d;
                __half hh; memcpy(&hh, &hy[off], 2);
                float got = __half2float(hh), want = href[((size_t)bh * rows.size() + i) * 64 + d];
                double e = fabs((double)got - want);
                if (!(e <= maxerr)) maxerr = std::isnan(e) ? INFINITY : e;
                maxref = fmax(maxref, fabs(want));
                sumerr += std::isnan(e) ? 1e9 : e; ++n;
            }
    double ms = 0;
    if (timed)
    {
        cudaEvent_t e0, e1;
        CHECK(cudaEventCreate(&e0)); CHECK(cudaEventCreate(&e1));
        for (int i = 0; i < 3; ++i) launch(grid);
        const int reps = 20;
        CHECK(cudaEventRecord(e0));
        for (int i = 0; i < reps; ++i) launch(grid);
        CHECK(cudaEventRecord(e1));
        CHECK(cudaEventSynchronize(e1));
        float t; CHECK(cudaEventElapsedTime(&t, e0, e1));
        ms = t / reps;
    }
    double flops = 4.0 * c.b * c.h * (double)c.nq * c.nk * 64;
    printf("NW=%d  [%d,%d,%d,64] x %d keys %s: max err %.3e (max |ref| %.3f, mean err %.2e)%s",
           ATTN_NW, c.b, c.h, c.nq, c.nk, c.block_layout ? "block layout" : "contiguous",
           maxerr, maxref, sumerr / n, maxerr <= 2e-2 * fmax(1.0, maxref) / 2 ? " ok" : " FAIL");
    if (timed) printf("  %.3f ms, %.0f TFLOP/s", ms, flops / ms / 1e9);
    printf("\n");
    cudaFree(q); cudaFree(k); cudaFree(v); cudaFree(y); cudaFree(drows); cudaFree(ref);
    return ms;
}

int main()
{
    Case cases[] = {
        {1, 1, 1, 1, false, 1}, {1, 2, 70, 70, false, 1}, {2, 3, 300, 517, true, 1}, {1, 2, 129, 1000, false, 1},
        {2, 2, 1000, 64, true, 1}, {2, 30, 17776, 17776, true, 97},
        // CogVideoX 1.5 at 81 x 768 x 1360: 11 x 48 x 85 = 44880 patches (22 latent frames, temporal patch 2) + 226 text tokens, 48 heads.
        {2, 48, 45106, 45106, true, 997},
    };
    for (auto& c : cases) run_case(c, c.nq > 10000);
    return 0;
}
