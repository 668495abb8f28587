// The FP8 kernels' call-free division (Kernels/common.cuh: row_divisor, divide_rn, e4m3_row_scale) emulated in C and
// checked against IEEE float division: every b in [1, 2) gets RN(1/b); random (value, row amax) pairs over all
// magnitudes get the same E4M3 code (and the same quotient where it is at least 2^-100); every positive float amax
// gets the same row scale amax / 448. And the 8-bit attention pre-pass's forms (attention_sage8.cu): every positive
// float amax gets int8_row_scale's RN(amax / 127); random (value, group amax) pairs get quant_s8's INT8 code from
// s8_code and, for normal groups, from s8_code_normal, and divide_rn_normal's quotient is divide_rn's bit for bit.
// No GPU needed:
//   gcc -O2 -ffp-contract=off -o /tmp/fp8div scripts/kernels/fp8-division-check.c -lm && /tmp/fp8div 100000000
// (about 40 s; the hardware rcp.approx is stood in for by RN(1/b) moved up to 2 ulps either way).
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>
typedef uint32_t u32;
static float U(u32 u){float f;memcpy(&f,&u,4);return f;}
static u32 B(float f){u32 u;memcpy(&u,&f,4);return u;}
static uint64_t st=88172645463325252ull;
static uint64_t rnd(){st^=st<<13;st^=st>>7;st^=st<<17;return st;}
static double urand(){return (rnd()>>11)*(1.0/9007199254740992.0);}
typedef struct {float b,y,pre,scale;} D;
static float rcp_approx(float b){ // hardware approx: RN(1/b) perturbed by up to ~2 ulps either way
  float y=1.0f/b; int k=(int)(rnd()%5)-2; return U(B(y)+k);}
static D row_divisor(float s){
  D d; d.pre=1.0f;
  if (s==0.0f){ d.b=0.0f; d.y=INFINITY; d.scale=1.0f; return d; }
  if (s < 1.17549435e-38f){ d.pre=18446744073709551616.0f; s=s*d.pre; }
  int e=(int)(B(s)>>23)-127;
  d.scale=U((u32)(127-e)<<23);
  d.b=s*d.scale;
  float y=rcp_approx(d.b);
  y=fmaf(fmaf(-d.b,y,1.0f),y,y);
  float lo=U(B(y)-1), hi=U(B(y)+1);
  float ey=fabsf(fmaf(-d.b,y,1.0f)), el=fabsf(fmaf(-d.b,lo,1.0f)), eh=fabsf(fmaf(-d.b,hi,1.0f));
  if (el<ey){y=lo;ey=el;}
  if (eh<ey) y=hi;
  d.y=y; return d;}
static float divide_rn(float a, D d){
  float x=(a*d.pre)*d.scale;
  float q0=x*d.y;
  if (!(x!=0.0f && fabsf(x)<INFINITY && d.b!=0.0f)) return q0;
  float ax=fabsf(x), q=fabsf(q0);
  float r=fmaf(-d.b,q,ax); q=fmaf(r,d.y,q);
  r=fmaf(-d.b,q,ax); q=fmaf(r,d.y,q);
  return copysignf(q,x);}
static unsigned char e4m3(float v){
  u32 bits=B(v); unsigned char sign=(bits>>24)&0x80;
  if (v!=v) return sign|0x7F;
  float a=fabsf(v);
  if (a>448.0f) return sign|0x7E;
  if (a<0.015625f) return sign|(unsigned char)rintf(a*512.0f);
  u32 ab=bits&0x7fffffffu; int e=(int)(ab>>23)-127; u32 m=ab&0x7fffffu;
  u32 kept=m>>20, rest=m&0xfffffu;
  if (rest>0x80000u||(rest==0x80000u&&(kept&1u))) kept++;
  if (kept==8u){kept=0;e++;}
  int code=((e+7)<<3)|(int)kept; return sign|(unsigned char)(code<0x7E?code:0x7E);}
static float row_scale(float amax){return (amax>0.0f&&amax<INFINITY)?amax/448.0f:1.0f;}
static float scale_d(float amax){ double a=amax, r=1.0/448.0; double q=a*r; q=fma(fma(-448.0,q,a),r,q); q=fma(fma(-448.0,q,a),r,q); return (float)q; }
// attention_sage8.cu's pre-pass forms.
static float int8_scale_ref(float amax){ float s=amax/127.0f; return (s>0.0f&&s<INFINITY)?s:1.0f; }
static float int8_row_scale(float amax){
  if (!(amax>0.0f&&amax<INFINITY)) return 1.0f;
  double a=amax, r=1.0/127.0; double q=a*r; q=fma(fma(-127.0,q,a),r,q); q=fma(fma(-127.0,q,a),r,q);
  float s=(float)q; return s>0.0f?s:1.0f;}
static int f2i_rn(float q){ if (q!=q) return 0; if (q>=2147483647.0f) return 2147483647; if (q<=-2147483648.0f) return (int)0x80000000u; return (int)nearbyintf(q); }
static int clamp127(int n){ return n<-127?-127:n>127?127:n; }
static int quant_s8_ref(float x,float s){ return clamp127(f2i_rn(x/s)); }
static int s8_code(float x, D d){ return clamp127(f2i_rn(divide_rn(x,d))); }
static int s8_code_normal(float a, D d){
  float x=a*d.scale, q=x*d.y, r=fmaf(-d.b,q,x); q=fmaf(r,d.y,q); r=fmaf(-d.b,q,x); q=fmaf(r,d.y,q); return f2i_rn(q);}
static float divide_rn_normal(float a, D d){
  float x=a*d.scale, ax=fabsf(x), q=ax*d.y, r=fmaf(-d.b,q,ax); q=fmaf(r,d.y,q); r=fmaf(-d.b,q,ax); q=fmaf(r,d.y,q); return copysignf(q,x);}
static int normal_group(float s,float amax){ return s>=1.17549435e-38f && amax<INFINITY; }
static float canon(float f){ return f!=f ? U(0x7fffffffu) : f; }  // GPU arithmetic gives the canonical NaN

int main(int argc,char**argv){
  long n=argc>1?atol(argv[1]):20000000, bad=0, badcode=0, checked=0;
  // every reciprocal of b in [1,2): the selection gives RN(1/b)
  for (u32 m=0;m<(1u<<23);m++){ float b=U(0x3f800000u|m); D d=row_divisor(b); if (B(d.y)!=B(1.0f/b)) {printf("rcp mismatch b=%a\n",b); return 1;} }
  printf("reciprocals: all 2^23 exact\n");
  long badscale=0;
  for (u32 u=1; u<0x7f800000u; u++){ float a=U(u); if (B(a/448.0f)!=B(scale_d(a))) { if (badscale<10) printf("scale mismatch %a\n",a); badscale++; } }
  printf("row scales: %ld mismatches over every positive finite float\n", badscale);
  if (badscale) return 1;
  for (long i=0;i<n;i++){
    // a row's amax over many magnitudes (incl. subnormal and huge), a value of the row below it
    int kind=rnd()%6; float amax;
    double ex = -150 + urand()*278;            // 2^-150 .. 2^128
    if (kind==0) amax=U((u32)(rnd()%0x7f7fffffu)+1);   // any positive float
    else amax=(float)ldexp(1.0+urand(), (int)ex);
    if (!(amax<INFINITY) || amax==0) continue;
    float s=row_scale(amax);
    D d=row_divisor(s);
    float a;
    int ak=rnd()%5;
    if (ak==0) a=amax; else if (ak==1) a=(float)(amax*urand());
    else if (ak==2) a=U(B(amax)-(u32)(rnd()%1000)); else if (ak==3) a=(float)(amax*ldexp(urand(), -(int)(rnd()%40)));
    else a=U((u32)(rnd()%(B(amax)+1)));
    if (rnd()&1) a=-a;
    float want=a/s, got=divide_rn(a,d); checked++;
    if (fabsf(want)>=0x1p-100f) { if (B(want)!=B(got)) { if (bad<10) printf("q mismatch a=%a s=%a want=%a got=%a\n",a,s,want,got); bad++; } }
    if (want!=want && got!=got) continue;
    if (e4m3(want)!=e4m3(got)) { if (badcode<10) printf("code mismatch a=%a s=%a want=%a got=%a\n",a,s,want,got); badcode++; }
  }
  // special values
  float sp[]={0.0f,-0.0f,INFINITY,-INFINITY,NAN,1e-45f,-1e-45f,448.0f,-448.0f};
  for (int i=0;i<9;i++) for (int j=0;j<4;j++){ float s=j==0?1.0f:j==1?1e-40f:j==2?3.5f:1e30f; D d=row_divisor(s); float want=sp[i]/s, got=divide_rn(sp[i],d);
    if (e4m3(want)!=e4m3(got) && !(want!=want)) {printf("special mismatch %a / %a: %a vs %a\n",sp[i],s,want,got); badcode++;} }
  printf("checked %ld: quotient mismatches at or above 2^-100 %ld, code mismatches %ld\n",checked,bad,badcode);
  if (bad||badcode) return 1;
  // int8_row_scale: every positive float amax (and 0, inf) gives Int8Quantizer.Scale's RN(amax / 127).
  long bad127=0;
  for (u32 u=0; u<=0x7f800000u; u++){ float a=U(u); if (B(int8_row_scale(a))!=B(int8_scale_ref(a))) { if (bad127<10) printf("int8 scale mismatch %a\n",a); bad127++; } }
  printf("int8 row scales: %ld mismatches over every non-negative float and +inf\n", bad127);
  if (bad127) return 1;
  // INT8 codes and E4M3 quotients of the pre-pass against IEEE division, over groups of every magnitude.
  long bad8=0, badn=0, badv=0, normals=0;
  for (long i=0;i<n;i++){
    int kind=rnd()%7; float amax;
    double ex = -150 + urand()*278;
    if (kind==0) amax=U((u32)(rnd()%0x7f7fffffu)+1);
    else if (kind==1) amax=0.0f;
    else if (kind==2) amax=INFINITY;
    else amax=(float)ldexp(1.0+urand(), (int)ex);
    if (amax!=amax) continue;
    float s=int8_row_scale(amax); D d=row_divisor(s);
    float a; int ak=rnd()%7;
    if (!(amax<INFINITY)) a = (ak<2) ? INFINITY : (float)ldexp(urand(), (int)(rnd()%200)-100);
    else if (ak==0) a=amax; else if (ak==1) a=(float)(amax*urand());
    else if (ak==2) a=U(B(amax)-(u32)(rnd()%1000)); else if (ak==3) a=(float)(amax*ldexp(urand(), -(int)(rnd()%40)));
    else if (ak==4) a=(float)(amax*(rnd()%255-127)/127.0*(1.0+ldexp(urand()-0.5,-20)));   // near the half-integers
    else if (ak==5) a=NAN; else a=U((u32)(rnd()%(B(amax)+1)));
    if (a==a && fabsf(a)>amax && amax<INFINITY) a=amax;
    if (rnd()&1) a=-a;
    int want=quant_s8_ref(a,s);
    if (s8_code(a,d)!=want) { if (bad8<10) printf("s8 mismatch a=%a s=%a want=%d got=%d\n",a,s,want,s8_code(a,d)); bad8++; }
    if (normal_group(s,amax)) { normals++;
      if (s8_code_normal(a,d)!=want) { if (badn<10) printf("s8 normal mismatch a=%a s=%a want=%d got=%d\n",a,s,want,s8_code_normal(a,d)); badn++; }
      // V: the same value over a channel scale amax / 448 (normal, finite channel)
      float sv=row_scale(amax); D dv=row_divisor(sv);
      if (normal_group(sv,amax)) { float g=canon(divide_rn(a,dv)), h=canon(divide_rn_normal(a,dv));
        if (B(g)!=B(h)) { if (badv<10) printf("divide_rn_normal mismatch a=%a s=%a %a vs %a\n",a,sv,g,h); badv++; } } }
  }
  printf("pre-pass: %ld pairs (%ld normal groups): s8_code mismatches %ld, s8_code_normal %ld, divide_rn_normal %ld\n",n,normals,bad8,badn,badv);
  return bad8||badn||badv;}
