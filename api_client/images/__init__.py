"""api_client/images"""
