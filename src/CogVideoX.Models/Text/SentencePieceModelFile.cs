using System.Text;
using CogVideoX.Weights;

namespace CogVideoX.Models.Text;

/// <summary>
/// The few fields of a sentencepiece <c>ModelProto</c> (spiece.model) the T5 tokenizer needs, read with a minimal
/// protobuf reader, and a copy of the model that Microsoft.ML.Tokenizers 2.0.1 can load.
/// </summary>
/// <remarks>
/// That library's Unigram loader indexes its vocabulary with <c>trainer_spec.bos_id</c> unconditionally and so throws
/// IndexOutOfRangeException on every T5 model, which has no BOS piece (bos_id = -1). <see cref="LoadableBytes"/>
/// appends bos_id/bos_piece naming an existing control piece to the trainer spec (protobuf keeps the last value of
/// a repeated scalar field). The tokenizer never asks for a BOS, so encoding is unchanged.
/// </remarks>
internal sealed class SentencePieceModelFile
{
    // ModelProto
    private const int PiecesField = 1;
    private const int TrainerSpecField = 2;
    private const int NormalizerSpecField = 3;

    // ModelProto.SentencePiece
    private const int PieceTextField = 1;
    private const int PieceTypeField = 3;

    // TrainerSpec (defaults are sentencepiece's)
    private const int ModelTypeField = 3;
    private const int ByteFallbackField = 35;
    private const int UnkIdField = 40;
    private const int BosIdField = 41;
    private const int EosIdField = 42;
    private const int PadIdField = 43;
    private const int BosPieceField = 46;

    public const int ModelTypeUnigram = 1;

    private readonly byte[] _bytes;

    private SentencePieceModelFile(string path, byte[] bytes)
    {
        Path = path;
        _bytes = bytes;
    }

    public string Path { get; }

    public List<string> Pieces { get; } = new();

    /// <summary>Piece types: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte.</summary>
    public List<int> PieceTypes { get; } = new();

    public int ModelType { get; private set; } = ModelTypeUnigram;

    public bool ByteFallback { get; private set; }

    public int UnkId { get; private set; }

    public int BosId { get; private set; } = 1;

    public int EosId { get; private set; } = 2;

    public int PadId { get; private set; } = -1;

    private int _trainerSpecCount;
    private bool _hasNormalizerSpec;

    public static SentencePieceModelFile Read(string path)
    {
        if (!File.Exists(path)) throw new WeightsException($"{path}: file not found");
        var file = new SentencePieceModelFile(path, File.ReadAllBytes(path));
        try
        {
            file.Parse();
        }
        catch (FormatException e)
        {
            throw new WeightsException($"{path}: not a sentencepiece model ({e.Message}); expected the spiece.model published with the tokenizer");
        }
        if (file.Pieces.Count == 0)
            throw new WeightsException($"{path}: the sentencepiece model has no pieces; expected the spiece.model published with the tokenizer");
        if (file._trainerSpecCount != 1)
            throw new WeightsException($"{path}: the sentencepiece model has {file._trainerSpecCount} trainer specs, expected one");
        if (!file._hasNormalizerSpec)
            throw new WeightsException($"{path}: the sentencepiece model has no normalizer spec; expected the spiece.model published with the tokenizer");
        foreach (var (what, id) in new[] { ("unk_id", file.UnkId), ("eos_id", file.EosId) })
            if (id < 0 || id >= file.Pieces.Count)
                throw new WeightsException($"{path}: {what} {id} is not a piece of the model's {file.Pieces.Count}");
        return file;
    }

    /// <summary>The model bytes, with a usable bos_id when the model has none (see the class remarks).</summary>
    public byte[] LoadableBytes()
    {
        if (BosId >= 0 && BosId < Pieces.Count) return _bytes;
        int stand = PadId >= 0 && PadId < Pieces.Count ? PadId : EosId;
        var output = new List<byte>(_bytes.Length + 32);
        int pos = 0;
        while (pos < _bytes.Length)
        {
            int start = pos;
            var (field, wire) = ReadTag(_bytes, ref pos);
            if (field == TrainerSpecField && wire == 2)
            {
                int length = checked((int)ReadVarint(_bytes, ref pos));
                var spec = new List<byte>(_bytes.AsSpan(pos, length).ToArray());
                pos += length;
                WriteVarint(spec, (BosIdField << 3) | 0);
                WriteVarint(spec, (ulong)stand);
                var piece = Encoding.UTF8.GetBytes(Pieces[stand]);
                WriteVarint(spec, (BosPieceField << 3) | 2);
                WriteVarint(spec, (ulong)piece.Length);
                spec.AddRange(piece);
                WriteVarint(output, (TrainerSpecField << 3) | 2);
                WriteVarint(output, (ulong)spec.Count);
                output.AddRange(spec);
            }
            else
            {
                SkipValue(_bytes, ref pos, wire);
                output.AddRange(_bytes.AsSpan(start, pos - start).ToArray());
            }
        }
        return output.ToArray();
    }

    private void Parse()
    {
        int pos = 0;
        while (pos < _bytes.Length)
        {
            var (field, wire) = ReadTag(_bytes, ref pos);
            if (field == PiecesField && wire == 2)
                ParsePiece(ReadBytes(_bytes, ref pos));
            else if (field == TrainerSpecField && wire == 2)
            {
                ParseTrainerSpec(ReadBytes(_bytes, ref pos));
                _trainerSpecCount++;
            }
            else
            {
                _hasNormalizerSpec |= field == NormalizerSpecField;
                SkipValue(_bytes, ref pos, wire);
            }
        }
    }

    private void ParsePiece(ReadOnlySpan<byte> message)
    {
        string text = "";
        int type = 1;
        int pos = 0;
        while (pos < message.Length)
        {
            var (field, wire) = ReadTag(message, ref pos);
            if (field == PieceTextField && wire == 2)
                text = Encoding.UTF8.GetString(ReadBytes(message, ref pos));
            else if (field == PieceTypeField && wire == 0)
                type = (int)ReadVarint(message, ref pos);
            else
                SkipValue(message, ref pos, wire);
        }
        Pieces.Add(text);
        PieceTypes.Add(type);
    }

    private void ParseTrainerSpec(ReadOnlySpan<byte> message)
    {
        int pos = 0;
        while (pos < message.Length)
        {
            var (field, wire) = ReadTag(message, ref pos);
            if (wire != 0)
            {
                SkipValue(message, ref pos, wire);
                continue;
            }
            // int32 fields hold negative values as sign-extended 64-bit varints.
            int value = unchecked((int)(long)ReadVarint(message, ref pos));
            switch (field)
            {
                case ModelTypeField: ModelType = value; break;
                case ByteFallbackField: ByteFallback = value != 0; break;
                case UnkIdField: UnkId = value; break;
                case BosIdField: BosId = value; break;
                case EosIdField: EosId = value; break;
                case PadIdField: PadId = value; break;
            }
        }
    }

    private static (int Field, int Wire) ReadTag(ReadOnlySpan<byte> data, ref int pos)
    {
        ulong tag = ReadVarint(data, ref pos);
        int field = (int)(tag >> 3);
        if (field == 0) throw new FormatException($"field number 0 at byte {pos}");
        return (field, (int)(tag & 7));
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> data, ref int pos)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= data.Length) throw new FormatException("truncated varint");
            byte b = data[pos++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new FormatException("varint longer than 10 bytes");
    }

    private static ReadOnlySpan<byte> ReadBytes(ReadOnlySpan<byte> data, ref int pos)
    {
        ulong length = ReadVarint(data, ref pos);
        if (length > (ulong)(data.Length - pos)) throw new FormatException($"a field of {length} bytes runs past the end");
        var slice = data.Slice(pos, (int)length);
        pos += (int)length;
        return slice;
    }

    private static void SkipValue(ReadOnlySpan<byte> data, ref int pos, int wire)
    {
        switch (wire)
        {
            case 0: ReadVarint(data, ref pos); break;
            case 1: Advance(data, ref pos, 8); break;
            case 2: ReadBytes(data, ref pos); break;
            case 5: Advance(data, ref pos, 4); break;
            default: throw new FormatException($"unsupported wire type {wire}");
        }
    }

    private static void Advance(ReadOnlySpan<byte> data, ref int pos, int count)
    {
        if (count > data.Length - pos) throw new FormatException("truncated fixed-size field");
        pos += count;
    }

    private static void WriteVarint(List<byte> output, ulong value)
    {
        while (value >= 0x80)
        {
            output.Add((byte)(value | 0x80));
            value >>= 7;
        }
        output.Add((byte)value);
    }
}
