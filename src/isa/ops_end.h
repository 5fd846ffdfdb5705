/* Ends one set of vector operations (see ops_scalar.h). */
#undef VF
#undef VW
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VSQRT
#undef VXOR_BITS
#undef VMAX_NAN
#undef VFLUSH
#undef VLA
#undef VPRED
#undef VLOADP
#undef VSTOREP
