namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
    /// <summary>Convolution as im2col over bounded chunks of output pixels followed by a GEMM against the weights.</summary>
    public void Conv3d(Tensor x, Tensor weight, Tensor? bias, Conv3dParams p, Tensor y)
    {
        using var xc = F32(x);
        using var wc = F32(weight);
        using var bc = bias is null ? null : F32(bias);
        int nb = xc.Dim(0), cin = xc.Dim(1), ti = xc.Dim(2), hi = xc.Dim(3), wi = xc.Dim(4);
        int cout = wc.Dim(0), kt = wc.Dim(2), kh = wc.Dim(3), kw = wc.Dim(4);
        int to = y.Dim(2), ho = y.Dim(3), wo = y.Dim(4);
        int kdim = cin * kt * kh * kw;
        long planeOut = (long)ho * wo;
        // About 16 MiB of im2col rows per chunk.
        int chunk = (int)Math.Clamp((16L << 20) / 4 / kdim, 16, Math.Max(planeOut, 16));
        float* xp = Ptr<float>(xc);
        float* wp = Ptr<float>(wc);
        float* bp = bc is null ? null : Ptr<float>(bc);
        WriteF32(y, ys =>
        {
            var colBuffer = new float[(long)chunk * kdim];
            var outBuffer = new float[(long)chunk * cout];
            fixed (float* yp = ys)
            fixed (float* col = colBuffer)
            fixed (float* ob = outBuffer)
            {
                for (int n = 0; n < nb; n++)
                    for (int t = 0; t < to; t++)
                    {
                        for (long p0 = 0; p0 < planeOut; p0 += chunk)
                        {
                            int count = (int)Math.Min(chunk, planeOut - p0);
                            Im2Col(xp + (long)n * cin * ti * hi * wi, cin, ti, hi, wi, kt, kh, kw, p, t, wo, p0, count, col);
                            Gemm.MultiplyTransposed(col, wp, ob, count, cout, kdim, bp);
                            // ob is [pixel, cout]; y wants [cout, pixel].
                            float* ybase = yp + ((long)n * cout * to + t) * planeOut;
                            for (int co = 0; co < cout; co++)
                            {
                                float* yrow = ybase + (long)co * to * planeOut + p0;
                                for (int i = 0; i < count; i++) yrow[i] = ob[(long)i * cout + co];
                            }
                        }
                    }
            }
        });
    }

    private static void Im2Col(float* x, int cin, int ti, int hi, int wi, int kt, int kh, int kw, Conv3dParams p,
        int t, int wo, long p0, int count, float* col)
    {
        int kdim = cin * kt * kh * kw;
        long plane = (long)hi * wi;
        ParallelRange(count, 64, (s, e) =>
        {
            for (long i = s; i < e; i++)
            {
                long pix = p0 + i;
                int oh = (int)(pix / wo), ow = (int)(pix % wo);
                float* dst = col + i * kdim;
                int q = 0;
                for (int c = 0; c < cin; c++)
                    for (int a = 0; a < kt; a++)
                    {
                        int it = t * p.StrideT - p.PadT + a;
                        for (int b = 0; b < kh; b++)
                        {
                            int ih = oh * p.StrideH - p.PadH + b;
                            bool rowIn = it >= 0 && it < ti && ih >= 0 && ih < hi;
                            float* src = x + ((long)c * ti + it) * plane + (long)ih * wi;
                            for (int d = 0; d < kw; d++)
                            {
                                int iw = ow * p.StrideW - p.PadW + d;
                                dst[q++] = rowIn && iw >= 0 && iw < wi ? src[iw] : 0f;
                            }
                        }
                    }
            }
        });
    }
}
