namespace CogVideoX.Diffusion;

/// <summary>
/// The 32-bit Mersenne Twister exactly as PyTorch's CPU generator runs it (<c>at::mt19937</c>): seeded from the low
/// 32 bits of the seed by the 2002 <c>init_genrand</c> recurrence, state regenerated 624 words at a time, tempered
/// output. Its stream equals <c>std::mt19937</c>'s for the same 32-bit seed.
/// </summary>
internal sealed class Mt19937
{
    private const int StateSize = 624;
    private const int ShiftSize = 397;
    private const uint MatrixA = 0x9908b0df;
    private const uint UpperMask = 0x80000000;
    private const uint LowerMask = 0x7fffffff;

    private readonly uint[] _state = new uint[StateSize];
    private int _left;
    private int _next;

    public Mt19937(ulong seed) => Seed(seed);

    public void Seed(ulong seed)
    {
        // torch keeps the full 64-bit seed for initial_seed() but only its low word enters the state.
        _state[0] = (uint)seed;
        for (int j = 1; j < StateSize; j++)
            _state[j] = unchecked(1812433253u * (_state[j - 1] ^ (_state[j - 1] >> 30)) + (uint)j);
        // left = 1 makes the first draw regenerate the whole state block, as torch does.
        _left = 1;
        _next = 0;
    }

    public uint Next()
    {
        if (--_left == 0) Regenerate();
        uint y = _state[_next++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= y >> 18;
        return y;
    }

    private void Regenerate()
    {
        var s = _state;
        _left = StateSize;
        _next = 0;
        int k = 0;
        for (; k < StateSize - ShiftSize; k++)
            s[k] = s[k + ShiftSize] ^ Twist(s[k], s[k + 1]);
        for (; k < StateSize - 1; k++)
            s[k] = s[k + ShiftSize - StateSize] ^ Twist(s[k], s[k + 1]);
        s[StateSize - 1] = s[ShiftSize - 1] ^ Twist(s[StateSize - 1], s[0]);
    }

    private static uint Twist(uint u, uint v) => (((u & UpperMask) | (v & LowerMask)) >> 1) ^ ((v & 1) != 0 ? MatrixA : 0u);
}
