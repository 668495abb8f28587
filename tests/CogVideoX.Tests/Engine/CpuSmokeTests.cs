using CogVideoX.Engine;

namespace CogVideoX.Tests.Engine;

/// <summary>First checks of the CPU backend against naive loops (the exhaustive op suite lives in CpuOpTests).</summary>
public class CpuSmokeTests
{
    private static float[] Rand(int n, int seed)
    {
        var r = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(r.NextDouble() * 2 - 1);
        return a;
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 5, 7)]
    [InlineData(17, 33, 65)]
    public void LinearMatchesNaive(int m, int n, int k)
    {
        var x = Rand(m * k, 1);
        var w = Rand(n * k, 2);
        var b = Rand(n, 3);
        using var tx = Tensor.FromArray(x, new[] { m, k });
        using var tw = Tensor.FromArray(w, new[] { n, k });
        using var tb = Tensor.FromArray(b, new[] { n });
        using var y = tx.Linear(tw, tb);
        var got = y.ToFloatArray();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = b[j];
                for (int q = 0; q < k; q++) s += x[i * k + q] * w[j * k + q];
                Assert.True(Math.Abs(s - got[i * n + j]) < 1e-4, $"({i},{j}) {s} vs {got[i * n + j]}");
            }
    }

    [Theory]
    [InlineData(Activation.Silu)]
    [InlineData(Activation.GeluTanh)]
    [InlineData(Activation.Gelu)]
    [InlineData(Activation.Relu)]
    public void FusedActivationEqualsSeparateOne(Activation activation)
    {
        // The epilogue runs in place on the GEMM/norm output; 2500 elements span several scratch blocks.
        using var x = Tensor.FromArray(Rand(50 * 40, 4), new[] { 50, 40 });
        using var w = Tensor.FromArray(Rand(50 * 40, 5), new[] { 50, 40 });
        using var fused = x.Linear(w, null, activation);
        using var plain = x.Linear(w);
        using var separate = plain.Apply(activation);
        Assert.Equal(separate.ToFloatArray(), fused.ToFloatArray());
        using var v = Tensor.FromArray(Rand(2 * 8 * 300, 6), new[] { 2, 8, 300 });
        using var normFused = v.GroupNorm(2, null, null, 1e-5f, activation);
        using var norm = v.GroupNorm(2, null, null, 1e-5f);
        using var normSeparate = norm.Apply(activation);
        Assert.Equal(normSeparate.ToFloatArray(), normFused.ToFloatArray());
    }

    [Fact]
    public void PermuteThenContiguousReordersElements()
    {
        using var t = Tensor.FromArray(Enumerable.Range(0, 24).Select(i => (float)i).ToArray(), new[] { 2, 3, 4 });
        using var p = t.Permute(2, 0, 1);
        using var c = p.Contiguous();
        var v = c.ToFloatArray();
        Assert.Equal(new[] { 4, 2, 3 }, c.ShapeArray());
        // c[k, i, j] = t[i, j, k] = i*12 + j*4 + k
        Assert.Equal(1 * 12 + 2 * 4 + 3, v[3 * 6 + 1 * 3 + 2]);
    }

    [Fact]
    public void Conv3dMatchesNaive()
    {
        int n = 1, ci = 3, t = 4, h = 5, w = 6, co = 2, kt = 3, kh = 3, kw = 3;
        var x = Rand(n * ci * t * h * w, 4);
        var wt = Rand(co * ci * kt * kh * kw, 5);
        var b = Rand(co, 6);
        var p = new Conv3dParams(1, 2, 1, 0, 1, 1);
        using var tx = Tensor.FromArray(x, new[] { n, ci, t, h, w });
        using var tw = Tensor.FromArray(wt, new[] { co, ci, kt, kh, kw });
        using var tb = Tensor.FromArray(b, new[] { co });
        using var y = tx.Conv3d(tw, tb, p);
        int to = t - kt + 1, ho = (h + 2 - kh) / 2 + 1, wo = w;
        Assert.Equal(new[] { n, co, to, ho, wo }, y.ShapeArray());
        var got = y.ToFloatArray();
        for (int o = 0; o < co; o++)
            for (int a = 0; a < to; a++)
                for (int i = 0; i < ho; i++)
                    for (int j = 0; j < wo; j++)
                    {
                        double s = b[o];
                        for (int c = 0; c < ci; c++)
                            for (int dt = 0; dt < kt; dt++)
                                for (int dh = 0; dh < kh; dh++)
                                    for (int dw = 0; dw < kw; dw++)
                                    {
                                        int it = a + dt, ih = i * 2 - 1 + dh, iw = j - 1 + dw;
                                        if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                        s += x[((c * t + it) * h + ih) * w + iw] * wt[(((o * ci + c) * kt + dt) * kh + dh) * kw + dw];
                                    }
                        float g = got[((o * to + a) * ho + i) * wo + j];
                        Assert.True(Math.Abs(s - g) < 1e-4, $"{s} vs {g}");
                    }
    }

    [Fact]
    public void AttentionMatchesNaiveWithBias()
    {
        int b = 1, h = 2, nq = 37, nk = 41, d = 8;
        var q = Rand(b * h * nq * d, 7);
        var k = Rand(b * h * nk * d, 8);
        var v = Rand(b * h * nk * d, 9);
        var bias = Rand(h * nq * nk, 10);
        using var tq = Tensor.FromArray(q, new[] { b, h, nq, d });
        using var tk = Tensor.FromArray(k, new[] { b, h, nk, d });
        using var tv = Tensor.FromArray(v, new[] { b, h, nk, d });
        using var tbias = Tensor.FromArray(bias, new[] { 1, h, nq, nk });
        using var y = Ops.Attention(tq, tk, tv, tbias, 0.3f);
        var got = y.ToFloatArray();
        for (int hh = 0; hh < h; hh++)
            for (int i = 0; i < nq; i++)
            {
                var s = new double[nk];
                for (int j = 0; j < nk; j++)
                {
                    double dot = 0;
                    for (int c = 0; c < d; c++) dot += q[(hh * nq + i) * d + c] * k[(hh * nk + j) * d + c];
                    s[j] = dot * 0.3 + bias[(hh * nq + i) * nk + j];
                }
                double max = s.Max(), sum = s.Sum(z => Math.Exp(z - max));
                for (int c = 0; c < d; c++)
                {
                    double o = 0;
                    for (int j = 0; j < nk; j++) o += Math.Exp(s[j] - max) / sum * v[(hh * nk + j) * d + c];
                    Assert.True(Math.Abs(o - got[(hh * nq + i) * d + c]) < 1e-5);
                }
            }
    }

    [Fact]
    public void GroupNormMatchesNaive()
    {
        int n = 2, c = 6, s = 7, g = 3;
        var x = Rand(n * c * s, 11);
        using var tx = Tensor.FromArray(x, new[] { n, c, s });
        using var y = tx.GroupNorm(g, null, null, 1e-6f);
        var got = y.ToFloatArray();
        int per = c / g * s;
        for (int i = 0; i < n * g; i++)
        {
            var seg = x.Skip(i * per).Take(per).Select(v => (double)v).ToArray();
            double mean = seg.Average(), var = seg.Select(v => (v - mean) * (v - mean)).Average();
            for (int j = 0; j < per; j++)
                Assert.True(Math.Abs((seg[j] - mean) / Math.Sqrt(var + 1e-6) - got[i * per + j]) < 1e-5);
        }
    }

    [Fact]
    public void ConcatPadUpsampleAndHalfRoundTrip()
    {
        using var a = Tensor.FromArray(new float[] { 1, 2, 3, 4 }, new[] { 2, 2 });
        using var b = Tensor.FromArray(new float[] { 5, 6 }, new[] { 1, 2 });
        using var c = Ops.Concat(0, a, b);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, c.ToFloatArray());
        using var p = a.Pad(new[] { (1, 0), (0, 1) }, -1);
        Assert.Equal(new float[] { -1, -1, -1, 1, 2, -1, 3, 4, -1 }, p.ToFloatArray());
        using var u = a.UpsampleNearest(2, 2);
        Assert.Equal(new float[] { 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4 }, u.ToFloatArray());
        using var h = a.To(DType.F16);
        using var bf = a.To(DType.BF16);
        Assert.Equal(a.ToFloatArray(), h.ToFloatArray());
        Assert.Equal(a.ToFloatArray(), bf.ToFloatArray());
    }

    [Fact]
    public void ScopeDisposesIntermediatesButKeepsResult()
    {
        Tensor kept, dropped;
        using (var scope = new TensorScope())
        {
            dropped = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3);
            kept = scope.Keep(Tensor.Zeros(CpuBackend.Instance, DType.F32, 3));
        }
        Assert.True(dropped.IsDisposed);
        Assert.False(kept.IsDisposed);
        kept.Dispose();
    }

    [Fact]
    public void DetachedTensorOutlivesEveryEnclosingScope()
    {
        Tensor cached;
        using (new TensorScope())
        {
            using (new TensorScope())
                cached = TensorScope.Detach(Tensor.Zeros(CpuBackend.Instance, DType.F32, 3));
        }
        Assert.False(cached.IsDisposed);
        cached.Dispose();
    }
}
