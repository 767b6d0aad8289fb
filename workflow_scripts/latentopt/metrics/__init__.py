"""Per-image metrics (PSNR, SSIM, LPIPS, MSE, MAE, visual quality) and FID/KID."""
