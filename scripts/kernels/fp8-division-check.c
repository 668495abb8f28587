// The FP8 kernels' call-free division (Kernels/common.cuh: row_divisor, divide_rn, e4m3_row_scale) emulated in C and
// checked against IEEE float division: every b in [1, 2) gets RN(1/b); random (value, row amax) pairs over all
// magnitudes get the same E4M3 code (and the same quotient where it is at least 2^-100); every positive float amax
// gets the same row scale amax / 448. No GPU needed:
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
  return bad||badcode;}
